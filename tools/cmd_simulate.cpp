// The simulate-site command (issue 15): a site snapshot made from a labelled set, to measure
// what the site's structure (tracks, shared frames) gives the learner on data whose truth is
// known.
//   simulate-site --data DIR [--chips] --switch-rate R --seed S --out SNAPSHOT
//   DIR holds one sub-folder per identity (its name is the label), images sorted by file name.
//   SNAPSHOT gets index.csv (docs/site-snapshot.md; files by absolute path, nothing copied),
//   and truth.csv "id,identity" for scoring, which `faceadapt train` never reads. With --chips
//   the images must be 150x150 chips (checked from each file's header; others are left out
//   and counted), for `faceadapt train --chips --data SNAPSHOT`.
#include <algorithm>
#include <fstream>
#include <map>

#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "faceadapt/ingest/face_batch.hpp"
#include "faceadapt/ingest/image_file.hpp"
#include "faceadapt/learner/face_resnet.hpp"
#include "faceadapt/learner/site_simulation.hpp"

namespace faceadapt::tools {
namespace {
namespace fs = std::filesystem;

struct SimulateArgs {
    fs::path data, out;
    bool chips = false;
    double switch_rate = 0.0;
    int64_t seed = 0;
    int cameras = 2;
};

// True when the file's header says a 150x150 image (read: the first 64 KB at most).
bool is_chip(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::string head(65536, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    head.resize(static_cast<size_t>(in.gcount()));
    const auto size = ingest::read_image_size(head);
    return size && size->width == learner::kChipSize && size->height == learner::kChipSize;
}

int run_simulate(const SimulateArgs& a) {
    if (!fs::is_directory(a.data)) throw std::invalid_argument("--data: no such folder: " + a.data.string());
    std::vector<fs::path> folders;
    for (const auto& e : fs::directory_iterator(a.data))
        if (e.is_directory()) folders.push_back(e.path());
    std::sort(folders.begin(), folders.end());
    std::vector<fs::path> files;
    std::vector<int64_t> identity;
    std::vector<std::string> names;
    int64_t refused = 0;
    for (const auto& folder : folders) {
        std::vector<fs::path> mine;
        for (const auto& e : fs::directory_iterator(folder))
            if (e.is_regular_file() && ingest::has_image_extension(e.path())) mine.push_back(fs::weakly_canonical(fs::absolute(e.path())));
        std::sort(mine.begin(), mine.end(), [](const auto& x, const auto& y) { return x.filename() < y.filename(); });
        const auto id = static_cast<int64_t>(names.size());
        bool any = false;
        for (auto& f : mine) {
            if (a.chips && !is_chip(f)) {
                ++refused;
                continue;
            }
            files.push_back(std::move(f));
            identity.push_back(id);
            any = true;
        }
        if (any) names.push_back(folder.filename().string());
    }
    if (files.empty()) throw std::invalid_argument("--data: no identity sub-folder with images under " + a.data.string());
    learner::SimulationOptions o;
    o.switch_rate = a.switch_rate;
    o.seed = static_cast<uint64_t>(a.seed);
    o.cameras = a.cameras;
    const auto site = learner::simulate_site(identity, o);
    std::error_code ec;
    fs::create_directories(a.out, ec);
    if (ec) throw std::runtime_error("--out: cannot create " + a.out.string() + ": " + ec.message());
    const auto rows = learner::simulated_rows(site, files);
    learner::write_snapshot_index(a.out / "index.csv", rows);
    {
        std::ofstream truth(a.out / "truth.csv", std::ios::trunc);
        truth << "id,identity\n";
        for (size_t k = 0; k < rows.size(); ++k) truth << rows[k].id << ',' << names[identity[site.order[k]]] << '\n';
        truth.flush();
        if (!truth) throw std::runtime_error((a.out / "truth.csv").string() + ": write failed");
    }
    std::printf("simulated site: %zu crops of %zu identities, %lld tracks (%lld with an identity switch), %lld scenes, "
                "%lld shared frames, %d cameras%s; wrote %s\n",
                rows.size(), names.size(), (long long)site.tracks, (long long)site.switched, (long long)site.scenes,
                (long long)site.shared_frames, o.cameras,
                refused ? (", " + std::to_string(refused) + " files not 150x150 left out").c_str() : "",
                (a.out / "index.csv").string().c_str());
    return 0;
}

}  // namespace

void register_simulate_command(CLI::App& app, CommandResult& result) {
    auto args = std::make_shared<SimulateArgs>();
    auto* cmd = app.add_subcommand("simulate-site",
                                   "Make a site snapshot (tracks, identity switches, shared frames) from a labelled set");
    cmd->add_option("--data", args->data, "Folder with one sub-folder of images per identity")->required();
    cmd->add_flag("--chips", args->chips, "The images are 150x150 chips (checked from their headers)");
    cmd->add_option("--switch-rate", args->switch_rate, "Share of tracks that switch identity")->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--seed", args->seed, "Random seed")->check(CLI::NonNegativeNumber);
    cmd->add_option("--cameras", args->cameras, "Cameras the scenes are spread over")->check(CLI::Range(1, 64));
    cmd->add_option("--out,-o", args->out, "Snapshot folder to write (index.csv, truth.csv)")->required();
    cmd->callback([args, &result] { run_guarded(result, [&] { return run_simulate(*args); }); });
}

}  // namespace faceadapt::tools
