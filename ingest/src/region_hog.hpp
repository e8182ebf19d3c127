// Private to ingest: dlib's HOG frontal face detector evaluated only inside regions of an image,
// giving there the detections a whole-image run gives.
//
// WHY
//   Running the detector on a crop is not the same as running it on the whole image: dlib builds
//   a 6/5 image pyramid whose resampling grid depends on the size of the image it starts from
//   (resize_image maps (in-1)/(out-1)), so every level above the first samples a crop at other
//   positions than the whole image's level, and a face near the detection threshold is found in
//   one and not the other. Measured on walkers-1080p.mp4: a face fully inside a 366 px crop, found
//   at confidence 0.33 on the whole frame, was not found on the crop.
// WHAT THIS REPRESENTS
//   The whole image's pyramid, computed lazily: a level's pixels are computed (bit-identical to
//   dlib's pyramid_down<6>, the same float arithmetic in the same order) only where a region
//   needs them, HOG features are extracted on sub-images whose origin lies on the level's 8 px
//   cell grid, and a detection window is kept only where all the features it reads are the
//   whole image's; the filters run only on the feature cells such windows read (in the same
//   8-wide / scalar float order as on the whole sub-image). Detections are then merged with
//   dlib's own non-max suppression. Pyramid levels whose boxes are smaller than the smallest
//   wanted face are skipped (the whole-image run finds boxes there that are then dropped: for
//   min_face_px 80, level 0, 30% of its cost).
// THREAD SAFETY
//   Not thread-safe (scratch buffers): one per camera / thread.
#pragma once

#include <cstddef>
#include <limits>
#include <vector>

#include <opencv2/core.hpp>

#include <dlib/image_processing/frontal_face_detector.h>

#include "face_hog.hpp"

namespace faceadapt::ingest::detail {

// Where to search, and for which box sides (image pixels): a region around a tracked face needs
// only the pyramid levels near the face's size.
struct HogRegion {
    cv::Rect rect;
    double min_box_px = 0;
    double max_box_px = std::numeric_limits<double>::infinity();
};

class RegionHog {
public:
    RegionHog();

    // requires: image CV_8UC1; regions in image pixels (clipped to it); min_box_px >= 0.
    // ensures:  the detections of dlib's frontal face detector on the whole image whose box side
    //           (image pixels) is at least min_box_px (levels whose boxes are smaller are not
    //           run) and whose detection window lies inside a region (or touches the image's
    //           border there) at a level whose box side is within that region's bounds, after
    //           dlib's non-max suppression among them; boxes in image pixels, as dlib returns
    //           them. A detection the whole-image run suppresses in favour of a box outside every
    //           region (or smaller than min_box_px) is kept.
    std::vector<ScoredBox> detect(const cv::Mat& image, const std::vector<HogRegion>& regions, double min_box_px);
    std::vector<ScoredBox> detect(const cv::Mat& image, const std::vector<cv::Rect>& regions, double min_box_px);

    // Pyramid level `level` (0 = the image) of the last image given to detect(), computed where
    // not yet; `rect` in that level's pixels, clipped to it. For tests.
    cv::Mat level_pixels(int level, cv::Rect rect);
    // Number of pyramid levels of the last image, as dlib's scanner would build them.
    int levels() const { return static_cast<int>(levels_.size()); }
    // Size of pyramid level `level` of the last image.
    cv::Size level_size(int level) const { return levels_.at(static_cast<std::size_t>(level)).size; }

private:
    // One pyramid level: its size, how it samples the level below (dlib's resize_image
    // bilinear, grey -> grey), its pixels and which 16x16 blocks of them this image has.
    struct Level {
        cv::Size size;
        std::vector<int> top, bottom;         // per row: input rows
        std::vector<double> tb;               // per row: vertical fraction
        std::vector<int> left, right;         // per column: input columns
        std::vector<float> lr, inv_lr;        // per column: horizontal fraction (and 1 - it)
        std::vector<unsigned char> vector4;   // per column: computed by dlib's 4-wide loop (else its scalar tail)
        cv::Mat pixels;                       // CV_8UC1 (level 0: the image itself)
        cv::Mat done;                         // CV_8UC1, one per 16x16 block
    };

    void prepare(const cv::Mat& image);
    void ensure(std::size_t level, cv::Rect rect);
    void resample(std::size_t level, const cv::Rect& rect);

    dlib::frontal_face_detector detector_;
    std::vector<Level> levels_;
    cv::Size image_size_;
};

}  // namespace faceadapt::ingest::detail
