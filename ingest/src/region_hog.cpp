// RegionHog: the whole image's HOG pyramid, computed only where regions need it.
#include "region_hog.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <dlib/image_processing.h>
#include <dlib/opencv/cv_image.h>
#include <dlib/simd.h>

#include "faceadapt/ingest/motion_regions.hpp"

namespace faceadapt::ingest::detail {
namespace {

using Pyramid = dlib::pyramid_down<6>;  // frontal_face_detector's pyramid
constexpr int kBlock = 16;              // granularity of the "already computed" map of a level
// A feature cell of a sub-image equals the whole level's when the sub-image extends this far
// beyond the cell on every side that is not the level's own border (fhog: the bilinear cell
// histograms and the block normalisation each reach one cell further; two cells suffice and one
// does not, checked in tests/ingest/test_region_hog.cpp).
constexpr int kContextPx = 16;
// A detection rectangle runs from the top-left pixel of its window's first cell to the top-left
// pixel of its last: the window's cells reach this much further right and down.
constexpr int kLastCellPx = 8;

// Where dlib's pyramid_down<N> puts point p of the level below, `levels` levels up.
dlib::dpoint point_down(const Pyramid& pyr, double x, double y, std::size_t levels) {
    return pyr.point_down(dlib::dpoint(x, y), static_cast<unsigned int>(levels));
}

}  // namespace

RegionHog::RegionHog() : detector_(dlib::get_frontal_face_detector()) {}

// Geometry of the pyramid for this image size (once per size), then a fresh "computed" map.
void RegionHog::prepare(const cv::Mat& image) {
    if (image.size() != image_size_) {
        image_size_ = image.size();
        levels_.clear();
        const auto& scanner = detector_.get_scanner();
        // As dlib's create_fhog_pyramid counts levels.
        Pyramid pyr;
        dlib::rectangle rect(0, 0, image.cols - 1, image.rows - 1);
        std::size_t count = 0;
        do {
            rect = pyr.rect_down(rect);
            ++count;
        } while (rect.width() >= scanner.get_min_pyramid_layer_width() &&
                 rect.height() >= scanner.get_min_pyramid_layer_height() && count < scanner.get_max_pyramid_levels());
        levels_.resize(count);
        levels_[0].size = image.size();
        for (std::size_t i = 1; i < count; ++i) {
            const cv::Size in = levels_[i - 1].size;
            Level& level = levels_[i];
            // pyramid_down<6>: set_image_size(down, (5*nr)/6+0.5, (5*nc)/6+0.5), truncated.
            level.size = cv::Size((5 * in.width) / 6, (5 * in.height) / 6);
            // resize_image(grey, grey, bilinear): the sample positions accumulate, rows in double...
            const double x_scale = (in.width - 1) / double(std::max(level.size.width - 1, 1));
            const double y_scale = (in.height - 1) / double(std::max(level.size.height - 1, 1));
            double y = -y_scale;
            for (int r = 0; r < level.size.height; ++r) {
                y += y_scale;
                const int top = static_cast<int>(std::floor(y));
                level.top.push_back(top);
                level.bottom.push_back(std::min(top + 1, in.height - 1));
                level.tb.push_back(y - top);
            }
            // ... columns four at a time in float lanes until the right neighbour would leave
            // the image, then one at a time in double.
            const auto n = static_cast<std::size_t>(level.size.width);
            level.left.assign(n, 0);
            level.right.assign(n, 0);
            level.lr.assign(n, 0.f);
            level.inv_lr.assign(n, 0.f);
            level.vector4.assign(n, 0);
            double x = -4 * x_scale;
            const dlib::simd4f step = 4 * x_scale;
            dlib::simd4f lanes(x, x + x_scale, x + 2 * x_scale, x + 3 * x_scale);
            int c = 0;
            for (;; c += 4) {
                lanes += step;
                const dlib::simd4i left = dlib::simd4i(lanes);
                const dlib::simd4f lr = lanes - left;
                const dlib::simd4f inv_lr = 1 - lr;
                const dlib::simd4i right = left + 1;
                dlib::int32 l4[4], r4[4];
                float lr4[4], inv4[4];
                left.store(l4);
                right.store(r4);
                if (r4[3] >= in.width) break;
                lr.store(lr4);
                inv_lr.store(inv4);
                for (int k = 0; k < 4 && c + k < level.size.width; ++k) {
                    const auto j = static_cast<std::size_t>(c + k);
                    level.left[j] = l4[k], level.right[j] = r4[k], level.lr[j] = lr4[k], level.inv_lr[j] = inv4[k];
                    level.vector4[j] = 1;
                }
                if (c + 4 >= level.size.width) {
                    c = level.size.width;
                    break;
                }
            }
            x = -x_scale + c * x_scale;
            for (; c < level.size.width; ++c) {
                x += x_scale;
                const auto j = static_cast<std::size_t>(c);
                const int left = static_cast<int>(std::floor(x));
                level.left[j] = left;
                level.right[j] = std::min(left + 1, in.width - 1);
                level.lr[j] = static_cast<float>(x - left);
                level.inv_lr[j] = 1 - level.lr[j];
            }
            level.pixels.create(level.size, CV_8UC1);
            level.done.create((level.size.height + kBlock - 1) / kBlock, (level.size.width + kBlock - 1) / kBlock,
                              CV_8UC1);
        }
    }
    levels_[0].pixels = image;
    for (std::size_t i = 1; i < levels_.size(); ++i) levels_[i].done.setTo(0);
}

// Level `l`'s pixels in `rect` (level pixels), computed from level l-1 exactly as dlib's
// resize_image does; level l-1 must hold the rows/columns they read.
void RegionHog::resample(std::size_t l, const cv::Rect& rect) {
    Level& level = levels_[l];
    const cv::Mat& in = levels_[l - 1].pixels;
    for (int r = rect.y; r < rect.br().y; ++r) {
        const auto ri = static_cast<std::size_t>(r);
        const unsigned char* top = in.ptr<unsigned char>(level.top[ri]);
        const unsigned char* bottom = in.ptr<unsigned char>(level.bottom[ri]);
        const double tb = level.tb[ri];
        const float tb_f = static_cast<float>(tb), inv_tb_f = static_cast<float>(1 - tb);
        unsigned char* out = level.pixels.ptr<unsigned char>(r);
        int c = rect.x;
        // Four columns at a time where dlib's 4-wide loop computed them (the same lane
        // arithmetic, so the same bits, at its speed).
        const dlib::simd4f tb4 = tb_f, inv_tb4 = inv_tb_f;
        for (; c + 4 <= rect.br().x && level.vector4[static_cast<std::size_t>(c + 3)]; c += 4) {
            const int* left = &level.left[static_cast<std::size_t>(c)];
            const int* right = &level.right[static_cast<std::size_t>(c)];
            dlib::simd4f lr, inv_lr;
            lr.load(&level.lr[static_cast<std::size_t>(c)]);
            inv_lr.load(&level.inv_lr[static_cast<std::size_t>(c)]);
            const dlib::simd4f tlf = inv_tb4 * inv_lr, trf = inv_tb4 * lr, blf = tb4 * inv_lr, brf = tb4 * lr;
            const dlib::simd4f tl(top[left[0]], top[left[1]], top[left[2]], top[left[3]]);
            const dlib::simd4f tr(top[right[0]], top[right[1]], top[right[2]], top[right[3]]);
            const dlib::simd4f bl(bottom[left[0]], bottom[left[1]], bottom[left[2]], bottom[left[3]]);
            const dlib::simd4f br(bottom[right[0]], bottom[right[1]], bottom[right[2]], bottom[right[3]]);
            const dlib::simd4f value = dlib::simd4f(tlf * tl + trf * tr + blf * bl + brf * br);
            float v[4];
            value.store(v);
            for (int k = 0; k < 4; ++k) out[c + k] = static_cast<unsigned char>(v[k] + 0.5);
        }
        for (; c < rect.br().x; ++c) {
            const auto j = static_cast<std::size_t>(c);
            const float tl = top[level.left[j]], tr = top[level.right[j]];
            const float bl = bottom[level.left[j]], br = bottom[level.right[j]];
            const float lr = level.lr[j];
            if (level.vector4[j]) {
                // dlib's 4-wide lane arithmetic, one lane (same float operations, same order).
                const float inv_lr = level.inv_lr[j];
                const float tlf = inv_tb_f * inv_lr, trf = inv_tb_f * lr, blf = tb_f * inv_lr, brf = tb_f * lr;
                const float value = tlf * tl + trf * tr + blf * bl + brf * br;
                out[c] = static_cast<unsigned char>(value + 0.5);
            } else {
                const float value = (1 - tb) * ((1 - lr) * tl + lr * tr) + tb * ((1 - lr) * bl + lr * br);
                dlib::assign_pixel(out[c], value);
            }
        }
    }
}

void RegionHog::ensure(std::size_t l, cv::Rect rect) {
    if (l == 0) return;
    Level& level = levels_[l];
    rect &= cv::Rect(cv::Point(), level.size);
    if (rect.empty()) return;
    const int bx0 = rect.x / kBlock, by0 = rect.y / kBlock;
    const int bx1 = (rect.br().x - 1) / kBlock, by1 = (rect.br().y - 1) / kBlock;
    cv::Rect missing;  // bounding box of the blocks not computed yet, in blocks
    for (int by = by0; by <= by1; ++by)
        for (int bx = bx0; bx <= bx1; ++bx)
            if (!level.done.at<unsigned char>(by, bx)) missing |= cv::Rect(bx, by, 1, 1);
    if (missing.empty()) return;
    const cv::Rect px = cv::Rect(missing.x * kBlock, missing.y * kBlock, missing.width * kBlock,
                                 missing.height * kBlock) & cv::Rect(cv::Point(), level.size);
    // What those pixels read of the level below.
    const auto x0 = static_cast<std::size_t>(px.x), x1 = static_cast<std::size_t>(px.br().x - 1);
    const auto y0 = static_cast<std::size_t>(px.y), y1 = static_cast<std::size_t>(px.br().y - 1);
    ensure(l - 1, cv::Rect(cv::Point(level.left[x0], level.top[y0]), cv::Point(level.right[x1] + 1, level.bottom[y1] + 1)));
    for (int by = missing.y; by < missing.br().y; ++by)
        for (int bx = missing.x; bx < missing.br().x; ++bx) {
            unsigned char& done = level.done.at<unsigned char>(by, bx);
            if (done) continue;
            resample(l, cv::Rect(bx * kBlock, by * kBlock, kBlock, kBlock) & cv::Rect(cv::Point(), level.size));
            done = 1;
        }
}

cv::Mat RegionHog::level_pixels(int level, cv::Rect rect) {
    if (level < 0 || level >= levels()) throw std::out_of_range("RegionHog::level_pixels: no such level");
    const auto l = static_cast<std::size_t>(level);
    rect &= cv::Rect(cv::Point(), levels_[l].size);
    ensure(l, rect);
    return levels_[l].pixels(rect);
}

std::vector<ScoredBox> RegionHog::detect(const cv::Mat& image, const std::vector<cv::Rect>& regions,
                                         double min_box_px) {
    std::vector<HogRegion> all;
    all.reserve(regions.size());
    for (const auto& r : regions) all.push_back({r});
    return detect(image, all, min_box_px);
}

std::vector<ScoredBox> RegionHog::detect(const cv::Mat& image, const std::vector<HogRegion>& regions,
                                         double min_box_px) {
    if (image.empty() || image.type() != CV_8UC1)
        throw std::invalid_argument("RegionHog::detect: expected a non-empty 8-bit grey image");
    prepare(image);
    const auto& scanner = detector_.get_scanner();
    const auto& fe = scanner.get_feature_extractor();
    const int cell = static_cast<int>(scanner.get_cell_size());
    const long filter_w = static_cast<long>(scanner.get_fhog_window_width());   // cells
    const long filter_h = static_cast<long>(scanner.get_fhog_window_height());
    const long box_w = filter_w - 2 * static_cast<long>(scanner.get_padding());
    const long box_h = filter_h - 2 * static_cast<long>(scanner.get_padding());
    const cv::Rect whole(cv::Point(), image.size());
    Pyramid pyr;

    std::vector<dlib::rect_detection> found;
    dlib::array<dlib::array<dlib::array2d<float>>> feats;
    dlib::array<dlib::array2d<float>> full;  // a sub-image's features
    dlib::array2d<float> saliency;
    feats.set_max_size(1);
    feats.set_size(1);
    std::vector<std::pair<double, dlib::rectangle>> dets;
    for (std::size_t l = 0; l < levels_.size(); ++l) {
        // The box every window of this level gives, in image pixels.
        dlib::rectangle probe = fe.feats_to_image(dlib::centered_rect(dlib::point(30, 30), box_w, box_h), cell,
                                                  filter_h, filter_w);
        probe = pyr.rect_up(probe, static_cast<unsigned int>(l));
        const double side = static_cast<double>(std::min(probe.width(), probe.height()));
        if (side + 2 < min_box_px) continue;
        const cv::Size size = levels_[l].size;
        // The regions on this level, grown by the context the features need, their origins on
        // the level's cell grid; sub-images that overlap enough are merged (their bounding box
        // costs no more than the two apart), so that no pixel's features are computed twice.
        std::vector<cv::Rect> subs;
        for (const HogRegion& asked : regions) {
            if (side + 2 < asked.min_box_px || side - 2 > asked.max_box_px) continue;
            const cv::Rect region = asked.rect & whole;
            if (region.empty()) continue;
            const dlib::dpoint a = point_down(pyr, region.x, region.y, l);
            const dlib::dpoint b = point_down(pyr, region.br().x, region.br().y, l);
            int x0 = std::max(0, static_cast<int>(std::floor(a.x())) - kContextPx);
            int y0 = std::max(0, static_cast<int>(std::floor(a.y())) - kContextPx);
            x0 -= x0 % cell;
            y0 -= y0 % cell;
            const int x1 = std::min(size.width, static_cast<int>(std::ceil(b.x())) + kContextPx + kLastCellPx);
            const int y1 = std::min(size.height, static_cast<int>(std::ceil(b.y())) + kContextPx + kLastCellPx);
            if (x1 - x0 < filter_w * cell || y1 - y0 < filter_h * cell) continue;  // no window fits
            subs.emplace_back(x0, y0, x1 - x0, y1 - y0);
        }
        // Bounding boxes of cell-aligned rectangles stay cell-aligned. As many crops as asked:
        // only merges that save area (the count is read before the vector is moved from).
        const std::size_t asked_count = subs.size();
        subs = merge_regions(std::move(subs), asked_count, size);
        for (const cv::Rect& sub : subs) {
            const int x0 = sub.x, y0 = sub.y, x1 = sub.br().x, y1 = sub.br().y;
            ensure(l, sub);
            fe(dlib::cv_image<unsigned char>(levels_[l].pixels(sub)), full, cell, filter_h, filter_w);
            if (full.size() == 0 || full[0].size() == 0) continue;
            // The checks below drop the windows near the sub-image's inner edges, but dlib's
            // filters would still compute their scores (on small sub-images, about half of them):
            // the filters run only on the feature cells the kept windows read (a score reads only
            // its window's cells, so the kept scores are the same). The checks are separable.
            const long nr = static_cast<long>(full[0].nr()), nc = static_cast<long>(full[0].nc());
            const auto box_at = [&](long c, long r) {
                return fe.feats_to_image(dlib::centered_rect(dlib::point(c, r), box_w, box_h), cell, filter_h, filter_w);
            };
            const auto keep_x = [&](const dlib::rectangle& w) {
                return !(x0 > 0 && w.left() < kContextPx) && !(x1 < size.width && w.right() + kLastCellPx > sub.width - kContextPx);
            };
            const auto keep_y = [&](const dlib::rectangle& w) {
                return !(y0 > 0 && w.top() < kContextPx) && !(y1 < size.height && w.bottom() + kLastCellPx > sub.height - kContextPx);
            };
            // Output positions dlib's filters give (the rest of the saliency image is border).
            long c0 = filter_w / 2, c1 = nc - 1 - (filter_w - 1) / 2;
            long r0 = filter_h / 2, r1 = nr - 1 - (filter_h - 1) / 2;
            while (c0 <= c1 && !keep_x(box_at(c0, r0))) ++c0;
            while (c1 >= c0 && !keep_x(box_at(c1, r0))) --c1;
            while (r0 <= r1 && !keep_y(box_at(c0, r0))) ++r0;
            while (r1 >= r0 && !keep_y(box_at(c0, r1))) --r1;
            if (c0 > c1 || r0 > r1) continue;
            // dlib's filters compute 8 output columns at a time and the last ones (fewer than 8)
            // one at a time, in another float order: each kept column is computed the way the
            // uncropped features would compute it (all 8-wide where they are, else the same tail).
            const long first = filter_w / 2, last = nc - 1 - (filter_w - 1) / 2;
            const long simd_end = first + 8 * ((last - first + 1) / 8) - 1;  // last 8-wide column
            if (c0 + 8 * ((c1 - c0 + 8) / 8) - 1 <= simd_end) c1 = c0 + 8 * ((c1 - c0 + 8) / 8) - 1;
            else c0 -= (c0 - first) % 8, c1 = last;
            const long fc0 = c0 - filter_w / 2, fr0 = r0 - filter_h / 2;  // first feature cell read
            const long fnc = c1 - c0 + filter_w, fnr = r1 - r0 + filter_h;
            if (fc0 == 0 && fr0 == 0 && fnc == nc && fnr == nr) {
                feats[0].swap(full);
            } else {
                feats[0].resize(full.size());
                for (std::size_t p = 0; p < full.size(); ++p) {
                    feats[0][p].set_size(fnr, fnc);
                    for (long r = 0; r < fnr; ++r)
                        std::copy_n(&full[p][fr0 + r][fc0], fnc, &feats[0][p][r][0]);
                }
            }
            for (unsigned long d = 0; d < detector_.num_detectors(); ++d) {
                const auto& w = detector_.get_processed_w(d);
                const double thresh = w.w(scanner.get_num_dimensions());
                // dlib's detect_from_fhog_pyramid on one level, the positions in the uncropped
                // features (dlib's feats_to_image is not a translation near the origin).
                const dlib::rectangle area = dlib::impl::apply_filters_to_fhog(w.get_detect_argument(), feats[0], saliency);
                dets.clear();
                for (long r = area.top(); r <= area.bottom(); ++r)
                    for (long c = area.left(); c <= area.right(); ++c)
                        if (saliency[r][c] >= thresh) dets.emplace_back(saliency[r][c], box_at(c + fc0, r + fr0));
                for (const auto& [score, window] : dets) {
                    // Kept only where every feature the window read is the whole level's.
                    if (!keep_x(window) || !keep_y(window)) continue;
                    dlib::rectangle rect = dlib::translate_rect(window, x0, y0);
                    rect = pyr.rect_up(rect, static_cast<unsigned int>(l));
                    dlib::rect_detection det;
                    det.detection_confidence = score - thresh;
                    det.weight_index = d;
                    det.rect = rect;
                    found.push_back(det);
                }
            }
        }
    }

    // dlib's non-max suppression (object_detector::operator()); overlapping regions give the
    // same window twice, which it drops as well.
    std::sort(found.rbegin(), found.rend());
    std::vector<dlib::rect_detection> kept;
    const auto& overlaps = detector_.get_overlap_tester();
    for (const auto& det : found)
        if (std::none_of(kept.begin(), kept.end(), [&](const auto& k) { return overlaps(k.rect, det.rect); }))
            kept.push_back(det);
    std::vector<ScoredBox> out;
    out.reserve(kept.size());
    for (const auto& det : kept) {
        const cv::Rect box = to_cv(det.rect);
        if (std::min(box.width, box.height) >= min_box_px) out.push_back({box, det.detection_confidence});
    }
    return out;
}

}  // namespace faceadapt::ingest::detail
