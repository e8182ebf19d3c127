// detect_stills: `faceadapt detect` over files and folder trees.
#include "faceadapt/ingest/face_batch.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "faceadapt/ingest/face_landmarks.hpp"

namespace faceadapt::ingest {
namespace fs = std::filesystem;

bool has_image_extension(const fs::path& file) {
    std::string ext = file.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    static constexpr const char* kExtensions[] = {".jpg", ".jpeg", ".png", ".pgm", ".ppm",
                                                  ".bmp", ".tif",  ".tiff", ".webp"};
    return std::any_of(std::begin(kExtensions), std::end(kExtensions), [&](const char* e) { return ext == e; });
}

namespace {

// (absolute file, path relative to the input root)
std::vector<std::pair<fs::path, fs::path>> list_images(const fs::path& input) {
    std::vector<std::pair<fs::path, fs::path>> files;
    if (fs::is_regular_file(input)) {
        if (!has_image_extension(input))
            throw std::invalid_argument("detect: " + input.string() + " is not an image file (by its extension)");
        files.emplace_back(input, input.filename());
        return files;
    }
    for (const auto& entry : fs::recursive_directory_iterator(input, fs::directory_options::follow_directory_symlink))
        if (entry.is_regular_file() && has_image_extension(entry.path()))
            files.emplace_back(entry.path(), fs::relative(entry.path(), input));
    std::sort(files.begin(), files.end());
    return files;
}

void write_chip(const fs::path& file, const cv::Mat& rgb_chip) {
    fs::create_directories(file.parent_path());
    cv::Mat bgr;
    cv::cvtColor(rgb_chip, bgr, cv::COLOR_RGB2BGR);
    if (!cv::imwrite(file.string(), bgr)) throw std::runtime_error("detect: cannot write " + file.string());
}

}  // namespace

StillsSummary detect_stills(const StillsJob& job, std::shared_ptr<const LandmarkModel> landmarks) {
    if (!fs::exists(job.input)) throw std::invalid_argument("detect: " + job.input.string() + " does not exist");
    const auto files = list_images(job.input);
    fs::create_directories(job.out);

    unsigned jobs = job.jobs ? job.jobs : std::max(1u, std::thread::hardware_concurrency());
    jobs = std::min<unsigned>(jobs, std::max<std::size_t>(1, files.size()));
    StillsSummary summary;
    summary.images = files.size();
    std::mutex summary_mutex;
    std::atomic<std::size_t> next{0};
    std::exception_ptr failure;

    auto work = [&] {
        try {
            const FaceAligner aligner(landmarks);
            for (std::size_t i = next++; i < files.size(); i = next++) {
                const auto& [file, relative] = files[i];
                const cv::Mat image = cv::imread(file.string(), cv::IMREAD_COLOR);
                if (image.empty()) {
                    std::lock_guard lock(summary_mutex);
                    ++summary.unreadable;
                    summary.unreadable_files.push_back(relative);
                    continue;
                }
                const auto faces = aligner.detect(image, job.options);
                const std::size_t count = job.all_faces ? faces.size() : std::min<std::size_t>(1, faces.size());
                for (std::size_t k = 0; k < count; ++k) {
                    fs::path target = job.out / relative;
                    target.replace_extension(".png");
                    if (job.all_faces)
                        target.replace_filename(relative.stem().string() + "_" + std::to_string(k) + ".png");
                    write_chip(target, faces[k].chip);
                }
                std::lock_guard lock(summary_mutex);
                summary.chips += count;
                if (faces.empty()) {
                    ++summary.missing;
                    summary.missing_files.push_back(relative);
                } else {
                    ++summary.found;
                }
            }
        } catch (...) {
            std::lock_guard lock(summary_mutex);
            if (!failure) failure = std::current_exception();
            next = files.size();  // stop the others
        }
    };
    {
        std::vector<std::jthread> workers;
        for (unsigned t = 0; t < jobs; ++t) workers.emplace_back(work);
    }
    if (failure) std::rethrow_exception(failure);
    std::sort(summary.missing_files.begin(), summary.missing_files.end());
    std::sort(summary.unreadable_files.begin(), summary.unreadable_files.end());
    return summary;
}

}  // namespace faceadapt::ingest
