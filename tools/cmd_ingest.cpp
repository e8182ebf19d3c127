// Subcommands of the ingest module:
//   detect IMAGE|DIR --out DIR [--all-faces] [--min-face-px N] [--upsample-below N]
//          [--no-retry] [--jobs N] [--landmarks FILE]
//     Detects and aligns the faces of still images (dataset preparation, enrollment photos) and
//     writes 150x150 RGB chips as PNG under --out, keeping the input's subfolders (identity
//     folders). Prints "images N, found F, missing M[, unreadable U], chips C" at the end.
//     Exit 0 when it ran (even with missing faces), 1 on a runtime failure (a chip that cannot be
//     written, an unreadable landmark model), 2 on bad arguments (input absent, not an image).
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "faceadapt/ingest/face_batch.hpp"
#include "faceadapt/ingest/face_landmarks.hpp"

namespace faceadapt::tools {

void register_ingest_commands(CLI::App& app, CommandResult& result) {
    struct Args {
        ingest::StillsJob job;
        std::string landmarks = ingest::LandmarkModel::default_path().string();
        bool no_retry = false;
    };
    auto args = std::make_shared<Args>();
    auto* detect = app.add_subcommand("detect", "Detect and align faces in IMAGE or every image under DIR; "
                                                "write 150x150 chips as PNG under --out");
    detect->add_option("INPUT", args->job.input, "An image file or a folder (searched recursively)")->required();
    detect->add_option("--out,-o", args->job.out, "Output folder (subfolders of INPUT are kept)")->required();
    detect->add_flag("--all-faces", args->job.all_faces, "Write every face as <stem>_<k>.png, not only the largest");
    detect->add_option("--min-face-px", args->job.options.min_face_px, "Ignore faces whose box side is smaller")
        ->check(CLI::NonNegativeNumber);
    detect->add_option("--upsample-below", args->job.options.upsample_below_px,
                       "Upsample (x2 steps) images whose shorter side is below this many pixels")
        ->check(CLI::NonNegativeNumber);
    detect->add_flag("--no-retry", args->no_retry, "Do not retry on a padded, equalised copy when nothing is found");
    detect->add_option("--jobs,-j", args->job.jobs, "Worker threads (0: one per core)");
    detect->add_option("--landmarks", args->landmarks, "dlib 68-point shape predictor file");
    detect->callback([args, &result] {
        args->job.options.pad_and_equalize_retry = !args->no_retry;
        run_guarded(result, [&] {
            const auto model = std::make_shared<const ingest::LandmarkModel>(args->landmarks);
            const auto summary = ingest::detect_stills(args->job, model);
            for (const auto& f : summary.unreadable_files)
                spdlog::warn("{}: not a readable image", (args->job.input / f).string());
            for (const auto& f : summary.missing_files) spdlog::info("{}: no face found", (args->job.input / f).string());
            std::cout << "images " << summary.images << ", found " << summary.found << ", missing " << summary.missing;
            if (summary.unreadable) std::cout << ", unreadable " << summary.unreadable;
            std::cout << ", chips " << summary.chips << " -> " << args->job.out.string() << '\n';
            return 0;
        });
    });
}

}  // namespace faceadapt::tools
