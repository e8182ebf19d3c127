// Subcommands of the learner module:
//   embed (--chips DIR | --images DIR) [--model FILE] --out FILE.jsonl [--device D] [--batch N]
//     One line {"path": ..., "embedding": [128 floats]} per image (raw embeddings, dlib scale).
//     --chips takes 150x150 chips as they are; --images detects and aligns first (the largest
//     face; images without a face are reported and left out). Default model: the source model.
//   eval --data DIR [--chips] [--model FILE] [--pairs FILE] [--json] [--device D] [--batch N]
//     DIR/<identity>/<image> (or DIR/images/<identity>/<image>). Verification over all pairs
//     (TAR at FAR 1e-3 / 1e-4, balanced pair accuracy at 0.6), leave-one-out rank-1, LFW-style
//     10-fold accuracy on --pairs (LFW format), and clustering quality of the co-training's
//     clustering (sparse Jaccard DBSCAN, Otsu eps) against the identities.
//   Exit 0 ok, 1 runtime failure, 2 bad input (missing folder, a chip that is not 150x150).
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "faceadapt/ingest/face_aligner.hpp"
#include "faceadapt/ingest/face_batch.hpp"
#include "faceadapt/ingest/face_landmarks.hpp"
#include "faceadapt/learner/cluster.hpp"
#include "faceadapt/learner/embedder.hpp"
#include "faceadapt/learner/eval.hpp"

namespace faceadapt::tools {

namespace fs = std::filesystem;
using learner::Embedding;

namespace {

// Image files under `dir`, recursively, sorted by path.
std::vector<fs::path> list_images(const fs::path& dir) {
    if (!fs::is_directory(dir)) throw BadInput("not a folder: " + dir.string());
    std::vector<fs::path> files;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file() && ingest::has_image_extension(e.path())) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    return files;
}

// Turns image files into 150x150 RGB chips: as they are (chips) or through the aligner
// (largest face). ok[i] is false for an image without a face / unreadable.
struct Chips {
    std::vector<cv::Mat> chips;  // one per file; empty Mat where !ok
    std::vector<bool> ok;
    std::size_t missing = 0, unreadable = 0;
};

Chips make_chips(const std::vector<fs::path>& files, bool align) {
    Chips out;
    out.chips.resize(files.size());
    out.ok.assign(files.size(), false);
    if (!align) {
        for (std::size_t i = 0; i < files.size(); ++i) {
            cv::Mat bgr = cv::imread(files[i].string(), cv::IMREAD_COLOR);
            if (bgr.empty()) throw BadInput(files[i].string() + ": not a readable image");
            if (bgr.rows != 150 || bgr.cols != 150)
                throw BadInput(files[i].string() + ": a chip must be 150x150, this is " + std::to_string(bgr.cols) +
                               "x" + std::to_string(bgr.rows) + " (use --images to detect and align)");
            cv::cvtColor(bgr, out.chips[i], cv::COLOR_BGR2RGB);
            out.ok[i] = true;
        }
        return out;
    }
    const auto landmarks = std::make_shared<const ingest::LandmarkModel>(ingest::LandmarkModel::default_path());
    const unsigned workers = std::max(1u, std::thread::hardware_concurrency());
    std::atomic<std::size_t> next{0}, missing{0}, unreadable{0};
    std::vector<std::thread> threads;
    for (unsigned w = 0; w < workers; ++w) {
        threads.emplace_back([&] {
            ingest::FaceAligner aligner(landmarks);
            for (std::size_t i = next++; i < files.size(); i = next++) {
                cv::Mat image = cv::imread(files[i].string(), cv::IMREAD_COLOR);
                if (image.empty()) {
                    ++unreadable;
                    continue;
                }
                auto faces = aligner.detect(image);
                if (faces.empty()) {
                    ++missing;
                    continue;
                }
                out.chips[i] = faces.front().chip;
                out.ok[i] = true;
            }
        });
    }
    for (auto& t : threads) t.join();
    out.missing = missing;
    out.unreadable = unreadable;
    return out;
}

// Embeds the ok chips; returns embeddings indexed like files (unset where !ok).
std::vector<Embedding> embed_chips(const learner::Embedder& embedder, const Chips& chips) {
    std::vector<cv::Mat> batch;
    for (std::size_t i = 0; i < chips.chips.size(); ++i)
        if (chips.ok[i]) batch.push_back(chips.chips[i]);
    const auto e = embedder.embed(batch);
    std::vector<Embedding> out(chips.chips.size());
    for (std::size_t i = 0, k = 0; i < chips.chips.size(); ++i)
        if (chips.ok[i]) out[i] = e[k++];
    return out;
}

template <typename F>
void run_command(CommandResult& result, F&& body) {
    run_guarded(result, [&] {
        body();
        return 0;
    });
}

struct ModelArgs {
    std::string model;
    std::string device = "cpu";
    int batch = 64;
};

void add_model_options(CLI::App* cmd, ModelArgs& m) {
    cmd->add_option("--model", m.model, "Model file (default: the pretrained source model)");
    cmd->add_option("--device", m.device, "cpu, cuda or cuda:N");
    cmd->add_option("--batch", m.batch, "Chips per forward pass")->check(CLI::PositiveNumber);
}

learner::Embedder make_embedder(const ModelArgs& m) {
    if (!m.model.empty() && !fs::exists(m.model)) throw BadInput("model file not found: " + m.model);
    return learner::Embedder(m.model, m.device, m.batch);
}

// LFW pairs file: a header line ("500" or "10 300"), then "name i j" (same) or "name1 i name2 j".
struct NamedPair {
    std::string a, b;
    bool same;
};
std::vector<NamedPair> read_lfw_pairs(const fs::path& file) {
    std::ifstream in(file);
    if (!in) throw BadInput("pairs file not found: " + file.string());
    std::vector<NamedPair> pairs;
    std::string line;
    std::getline(in, line);  // header
    auto name = [](const std::string& person, int k) {
        char buf[16];
        std::snprintf(buf, sizeof buf, "_%04d", k);
        return person + "/" + person + buf;
    };
    for (int lineno = 2; std::getline(in, line); ++lineno) {
        std::istringstream ss(line);
        std::vector<std::string> tok;
        for (std::string t; ss >> t;) tok.push_back(t);
        if (tok.empty()) continue;
        try {
            if (tok.size() == 3) pairs.push_back({name(tok[0], std::stoi(tok[1])), name(tok[0], std::stoi(tok[2])), true});
            else if (tok.size() == 4)
                pairs.push_back({name(tok[0], std::stoi(tok[1])), name(tok[2], std::stoi(tok[3])), false});
            else throw std::invalid_argument("3 or 4 fields expected");
        } catch (const std::exception&) {
            throw BadInput(file.string() + ":" + std::to_string(lineno) + ": not an LFW pair line: '" + line + "'");
        }
    }
    return pairs;
}

void run_embed(const fs::path& dir, bool align, const ModelArgs& margs, const fs::path& out_file) {
    const auto files = list_images(dir);
    if (files.empty()) throw BadInput("no images under " + dir.string());
    const Chips chips = make_chips(files, align);  // bad chips are reported before the model loads
    const auto embedder = make_embedder(margs);
    const auto embeddings = embed_chips(embedder, chips);
    const fs::path tmp = out_file.string() + ".tmp";
    {
        std::ofstream out(tmp);
        if (!out) throw std::runtime_error("cannot write " + out_file.string());
        for (std::size_t i = 0; i < files.size(); ++i) {
            if (!chips.ok[i]) {
                spdlog::info("{}: no face found", files[i].string());
                continue;
            }
            nlohmann::ordered_json line{{"path", files[i].string()},
                                {"embedding", std::vector<float>(embeddings[i].begin(), embeddings[i].end())}};
            out << line.dump() << '\n';
        }
        out.flush();
        if (!out) throw std::runtime_error("write failed: " + out_file.string());
    }
    fs::rename(tmp, out_file);
    std::cerr << "images " << files.size() << ", embedded " << (files.size() - chips.missing - chips.unreadable)
              << ", no face " << chips.missing << ", unreadable " << chips.unreadable << " -> " << out_file.string()
              << '\n';
}

struct EvalArgs {
    std::string data;
    bool chips = false;
    std::string pairs;
    bool json = false;
    ModelArgs model;
};

void run_eval(const EvalArgs& a) {
    fs::path root = a.data;
    if (!fs::is_directory(root)) throw BadInput("not a folder: " + root.string());
    if (fs::is_directory(root / "images")) root /= "images";
    // identities = subfolders, sorted
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(root))
        if (e.is_directory()) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    if (names.empty()) throw BadInput("no identity folders under " + root.string());
    std::vector<fs::path> files;
    std::vector<int> labels;
    for (std::size_t k = 0; k < names.size(); ++k)
        for (const auto& f : list_images(root / names[k])) {
            files.push_back(f);
            labels.push_back(static_cast<int>(k));
        }
    if (files.empty()) throw BadInput("no images under " + root.string());

    std::vector<NamedPair> named_pairs;
    if (!a.pairs.empty()) {
        fs::path p = a.pairs;
        if (!fs::exists(p) && fs::exists(fs::path(a.data) / p)) p = fs::path(a.data) / p;
        named_pairs = read_lfw_pairs(p);
    }

    const auto embedder = make_embedder(a.model);
    const Chips chips = make_chips(files, !a.chips);
    const auto all = embed_chips(embedder, chips);
    std::vector<Embedding> emb;
    std::vector<int> lab;
    std::map<std::string, std::size_t> index;  // "<identity>/<stem>" -> row in emb
    for (std::size_t i = 0; i < files.size(); ++i) {
        if (!chips.ok[i]) continue;
        index[(files[i].parent_path().filename() / files[i].stem()).string()] = emb.size();
        emb.push_back(all[i]);
        lab.push_back(labels[i]);
    }
    if (emb.size() < 2) throw std::runtime_error("fewer than 2 faces to evaluate under " + root.string());
    std::size_t used_identities = 0;
    {
        std::vector<bool> seen(names.size(), false);
        for (int l : lab) used_identities += !seen[l], seen[l] = true;
    }

    nlohmann::ordered_json j;
    j["images"] = emb.size();
    j["identities"] = used_identities;
    j["no_face"] = chips.missing;
    j["unreadable"] = chips.unreadable;
    const auto v = learner::verify_all_pairs(emb, lab);
    j["tar_at_far_1e-3"] = v.tar_at_far_1e3;
    j["tar_at_far_1e-4"] = v.tar_at_far_1e4;
    j["pair_accuracy"] = v.pair_accuracy;
    j["mean_genuine_distance"] = v.mean_genuine_distance;
    j["mean_impostor_distance"] = v.mean_impostor_distance;
    j["rank1"] = learner::rank1_leave_one_out(emb, lab).rank1;
    if (!a.pairs.empty()) {
        std::vector<learner::Pair> pairs;
        std::size_t skipped = 0;
        for (const auto& p : named_pairs) {
            const auto ia = index.find(p.a), ib = index.find(p.b);
            if (ia == index.end() || ib == index.end()) {
                ++skipped;
                continue;
            }
            pairs.push_back({ia->second, ib->second, p.same});
        }
        const auto pr = learner::pairs_accuracy(emb, pairs, 10);
        j["pairs_accuracy"] = pr.accuracy;
        j["pairs_accuracy_std"] = pr.accuracy_std;
        j["pairs_threshold"] = pr.mean_threshold;
        j["pairs_used"] = pairs.size();
        j["pairs_skipped"] = skipped;
    }
    learner::ClusterOptions copt;  // the co-training's defaults: sparse Jaccard DBSCAN, Otsu eps
    if (emb.size() > static_cast<std::size_t>(copt.k1)) {
        const auto q = learner::cluster_and_score(emb, lab, copt);
        j["pairwise_precision"] = q.pairwise_precision;
        j["pairwise_recall"] = q.pairwise_recall;
        j["pairwise_f"] = q.pairwise_f;
        j["bcubed_precision"] = q.bcubed_precision;
        j["bcubed_recall"] = q.bcubed_recall;
        j["bcubed_f"] = q.bcubed_f;
        j["nmi"] = q.nmi;
        j["clusters"] = q.clusters;
        j["noise"] = q.noise;
    } else {
        spdlog::warn("{} faces: too few to cluster (needs more than {}), clustering keys left out", emb.size(), copt.k1);
    }
    j["model_version"] = embedder.metadata().version;

    if (a.json) {
        std::cout << j.dump() << '\n';
    } else {
        for (const auto& [k, val] : j.items()) std::cout << k << ": " << val.dump() << '\n';
    }
}

}  // namespace

void register_learner_commands(CLI::App& app, CommandResult& result) {
    struct EmbedArgs {
        std::string chips, images, out;
        ModelArgs model;
    };
    auto ea = std::make_shared<EmbedArgs>();
    auto* embed = app.add_subcommand("embed", "Embed 150x150 chips (--chips) or photos (--images) into JSON lines");
    auto* oc = embed->add_option("--chips", ea->chips, "Folder of 150x150 RGB chips (searched recursively)");
    auto* oi = embed->add_option("--images", ea->images, "Folder of photos: detect and align the largest face first");
    oc->excludes(oi);
    oi->excludes(oc);
    embed->add_option("--out,-o", ea->out, "Output JSON-lines file")->required();
    add_model_options(embed, ea->model);
    embed->callback([ea, &result] {
        run_command(result, [&] {
            if (ea->chips.empty() == ea->images.empty()) throw BadInput("give exactly one of --chips DIR or --images DIR");
            const bool align = ea->chips.empty();
            run_embed(align ? ea->images : ea->chips, align, ea->model, ea->out);
        });
    });

    auto va = std::make_shared<EvalArgs>();
    auto* eval = app.add_subcommand("eval", "Evaluate a model on a labelled folder DIR/<identity>/<image>");
    eval->add_option("--data", va->data, "Dataset folder (identity subfolders)")->required();
    eval->add_flag("--chips", va->chips, "Images are 150x150 chips already (no detection)");
    eval->add_option("--pairs", va->pairs, "LFW-format pairs file (relative to --data if not found as given)");
    eval->add_flag("--json", va->json, "Print one JSON object");
    add_model_options(eval, va->model);
    eval->callback([va, &result] { run_command(result, [&] { run_eval(*va); }); });
}

}  // namespace faceadapt::tools
