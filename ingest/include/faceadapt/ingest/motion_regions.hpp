// MotionRegions: where in a frame face detection can pay (motion and live tracks).
//
// WHAT THIS REPRESENTS
//   The gate in front of the HOG detector of one camera. Each frame is shrunk to a small grey
//   copy. Motion there is: OpenCV's MOG2 background subtraction while the camera holds still,
//   OR'ed with the difference to the previous small frame after compensating the camera's own
//   motion (a similarity transform fitted with RANSAC to tracked corners), which is what still
//   works while a camera pans, zooms or shakes (MOG2's model is restarted then). The frame is
//   cut into tiles of about one face. A face sits at the top of whatever moves with it, so the
//   moving tiles within `head_band_faces` of the top of each vertical run of moving tiles are
//   searched on every frame, while the rest of a moving shape (bodies) shares a small
//   round-robin budget (`body_budget`, longest-waiting first). Selected tiles, grown by a margin
//   so that a face on them fits whole in a crop, and the boxes of live tracks, grown likewise,
//   are merged into a few crops of the full-resolution frame. The first frame (no history
//   yet) gives the whole frame, and so does a frame whose crops would add up to more than
//   `full_frame_above` of it. With motion_every > 1 the frames between two motion searches skip
//   the motion analysis too and give only the track regions; of them only the frame just before
//   a motion frame is shrunk (its small copy is what that frame is differenced against). Faces
//   tracked now (update()'s `tracked_faces`) explain their person's motion: a head band that such
//   a face touches is not selected (the caller searches the face's track region), so a motion
//   frame searches the people without a face yet. Measured on walkers-1080p.mp4: see
//   bench/ingest/bench_face_stage and ingest/README.md.
// THREAD SAFETY
//   Not thread-safe: one per camera, used by one thread at a time.
#pragma once

#include <cstddef>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/video/background_segm.hpp>

namespace faceadapt::ingest {

struct MotionOptions {
    int min_face_px = 80;            // smallest wanted face side, full-resolution pixels
    int analysis_width = 320;        // width of the small copy motion is measured on
    double tile_faces = 1.0;         // tile side, in min_face_px
    double min_tile_motion = 0.02;   // fraction of a tile's pixels that must move to select it
    double margin_faces = 0.2;       // selected tiles grown by this many min_face_px on each side
    double close_faces = 0.5;        // motion gaps up to this many min_face_px are closed
    double head_band_faces = 3.0;    // moving tiles within this many min_face_px of the top of
                                     // their vertical run of moving tiles: searched every frame;
                                     // <= 0: every moving tile is a head tile
    int motion_every = 3;            // search motion on one frame in this many (tracks: every frame)
    double head_gap_faces = 2.0;     // a moving run below a still gap this tall has its own head band
    double body_budget = 0.0;        // other moving tiles searched per frame, fraction of all tiles
    int body_max_defer = 0;          // > 0: no moving tile waits more frames than this
    double track_margin = 0.75;      // track boxes grown by this many box sides on each side
    double track_grace_s = 0.45;     // FaceStage: a track unmatched for longer than this (seconds)
                                     // is searched on motion frames only (< 0: on every frame)
    double track_scale = 1.3;        // FaceStage: around a track, faces from its box side / this to
                                     // its side * this are searched (<= 1: every size)
    int diff_threshold = 18;         // grey levels: compensated frame difference that is motion
    double still_camera_px = 0.5;    // camera motion below this (small-copy pixels) is "still"
    std::size_t max_regions = 8;     // crops per frame at most
    double full_frame_above = 0.7;   // coverage above which the whole frame is one region
    double tracked_grow = 0.25;      // < 0: off. A head band (of one tile column) that a tracked
                                     // face's box, grown by this many box sides on each side,
                                     // touches is a person already tracked (their face is searched
                                     // by the track's region): that band is not searched
};

// Merges rectangles into a few covering crops, minimising the area a detector must scan: two
// crops merge when their bounding box is no larger than the two areas added (they overlap
// enough or touch along a side); then, while more than `max_count` remain, the pair whose
// bounding box adds the least area. Results are clipped to `bounds` (empty ones dropped) and may
// still overlap a little. ensures: every input pixel inside bounds is covered; size <= max(1, max_count).
std::vector<cv::Rect> merge_regions(std::vector<cv::Rect> rects, std::size_t max_count, cv::Size bounds);

// The area a detector scans over `rects` (the sum of their clipped areas) as a fraction of
// `bounds`, capped at 1.
double coverage(const std::vector<cv::Rect>& rects, cv::Size bounds);

class MotionRegions {
public:
    // throws std::invalid_argument when min_face_px < 1, analysis_width < 16 or max_regions == 0.
    explicit MotionRegions(const MotionOptions& options);

    // requires: frame is the camera's full-resolution frame, CV_8UC1 (grey) or CV_8UC3 (BGR),
    //           the same size every call (a new size restarts the background model);
    //           track_boxes in frame pixels.
    // ensures:  at most max_regions disjoint rectangles inside the frame to run detection on;
    //           empty when nothing moves and no track is live.
    std::vector<cv::Rect> update(const cv::Mat& frame, const std::vector<cv::Rect>& track_boxes);
    // Same, where `tracked_faces` (frame pixels: faces tracked now, whose track regions the
    // caller searches) explain the motion of their person: head bands they touch (see
    // MotionOptions::tracked_grow) are not selected; moving runs without one are.
    std::vector<cv::Rect> update(const cv::Mat& frame, const std::vector<cv::Rect>& track_boxes,
                                 const std::vector<cv::Rect>& tracked_faces);

    // The regions update() adds for `track_boxes` (grown by track_margin, clipped to `frame`,
    // not merged), one per box; empty ones dropped.
    std::vector<cv::Rect> track_regions(const std::vector<cv::Rect>& track_boxes, cv::Size frame) const;

    // The motion mask of the last frame, on the small copy (255 = moving; all 0 on a frame whose
    // motion is not searched, see motion_every).
    const cv::Mat& last_mask() const { return mask_; }
    // Whether the last update() searched motion (the first frame and one in motion_every).
    bool motion_searched() const { return motion_searched_; }
    // Whether the camera itself was found moving between the last two frames.
    bool camera_moving() const { return camera_moving_; }

private:
    cv::Mat camera_motion(const cv::Mat& previous, const cv::Mat& current) const;
    void shrink(const cv::Mat& frame, cv::Mat& out, cv::Size size);

    MotionOptions options_;
    cv::Ptr<cv::BackgroundSubtractorMOG2> subtractor_;
    cv::Size frame_size_;
    cv::Mat small_, previous_, mask_, mog_mask_, small_bgr_;
    long frames_ = 0;
    long still_frames_ = 0;
    std::vector<int> tile_age_;   // per tile: frames its motion has waited to be searched       // frames since the camera last moved (MOG2 model age)
    bool camera_moving_ = false;
    bool motion_searched_ = false;
};

}  // namespace faceadapt::ingest
