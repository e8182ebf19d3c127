// The child protocol (child_protocol.hpp): every message round-trips through its line; what is
// malformed is refused with a reason that never quotes the line.
#include <cmath>
#include <string>

#include <gtest/gtest.h>

#include "faceadapt/daemon/child_protocol.hpp"

using namespace faceadapt::daemon;
using nlohmann::json;

namespace {

ChildEvaluation sample_evaluation() {
    ChildEvaluation e;
    e.role = "candidate";
    e.model = "/state/models/candidates/c/candidate.model";
    e.figures.gallery = {3, 9, true, 0.875, 1e-3, 0.5};
    e.figures.site = {40, 6, true, 0.9, 0.125};
    e.gallery.names = {"alice", "bob"};
    std::array<float, 128> a{}, b{};
    for (std::size_t k = 0; k < 128; ++k) {
        a[k] = static_cast<float>(k) / 128.0f;
        b[k] = -0.25f + static_cast<float>(k % 7) * 1e-3f;
    }
    e.gallery.embeddings = {a, b};
    return e;
}

std::string error_of(const std::string& line) {
    try {
        parse_protocol_line(line);
    } catch (const ProtocolError& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST(ChildProtocol, ProgressRoundTripsWithOnlyTheMembersSet) {
    ChildProgress p;
    p.cycle = 2;
    p.cycles = 6;
    p.iter = 30;
    p.iters = 50;
    p.loss = 1.25;
    const std::string line = to_protocol_line(p);
    EXPECT_EQ(line.back(), '\n');
    EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line";
    EXPECT_EQ(json::parse(line).count("eta_s"), 0u);
    const auto back = std::get<ChildProgress>(parse_protocol_line(line));
    EXPECT_EQ(back.phase, "train");
    EXPECT_EQ(back.cycle, 2);
    EXPECT_EQ(back.cycles, 6);
    EXPECT_EQ(back.iter, 30);
    EXPECT_EQ(back.iters, 50);
    EXPECT_EQ(back.loss, 1.25);
    EXPECT_FALSE(back.eta_s);
}

TEST(ChildProtocol, ResultAndErrorRoundTrip) {
    const ChildTrainResult r{"/x/candidate.model", json{{"method", "mmt"}, {"cycle_reports", json::array({1, 2})}}};
    const auto back = std::get<ChildTrainResult>(parse_protocol_line(to_protocol_line(r)));
    EXPECT_EQ(back.model, r.model);
    EXPECT_EQ(back.provenance, r.provenance);
    const auto err = std::get<ChildError>(parse_protocol_line(to_protocol_line(ChildError{"bad\ninput\x1b[31m"})));
    EXPECT_EQ(err.message, "bad\\x0ainput\\x1b[31m") << "control characters never reach the journal (escaped)";
    const auto long_err = std::get<ChildError>(parse_protocol_line(to_protocol_line(ChildError{std::string(5000, 'e')})));
    EXPECT_EQ(long_err.message, std::string(500, 'e') + "...") << "a child's message is bounded";
}

TEST(ChildProtocol, EvaluationRoundTripsFiguresAndTheGalleryExactly) {
    const ChildEvaluation e = sample_evaluation();
    const auto back = std::get<ChildEvaluation>(parse_protocol_line(to_protocol_line(e)));
    EXPECT_EQ(back.role, "candidate");
    EXPECT_EQ(back.model, e.model);
    EXPECT_EQ(to_json(back.figures), to_json(e.figures));
    EXPECT_EQ(back.gallery.names, e.gallery.names);
    ASSERT_EQ(back.gallery.embeddings.size(), 2u);
    EXPECT_EQ(back.gallery.embeddings[0], e.gallery.embeddings[0]);  // floats survive the text form exactly
    EXPECT_EQ(back.gallery.embeddings[1], e.gallery.embeddings[1]);
}

TEST(ChildProtocol, ANonFiniteFigureTravelsAsNullAndComesBackNaNForTheGateToRefuse) {
    ChildEvaluation e = sample_evaluation();
    e.figures.site.compactness = std::nan("");
    const std::string line = to_protocol_line(e);
    EXPECT_TRUE(json::parse(line)["figures"]["site"]["compactness"].is_null());
    const auto back = std::get<ChildEvaluation>(parse_protocol_line(line));
    EXPECT_TRUE(std::isnan(back.figures.site.compactness));
}

TEST(ChildProtocol, MalformedLinesAreRefusedWithAReason) {
    EXPECT_NE(error_of("loading snapshot").find("not JSON"), std::string::npos);
    EXPECT_EQ(error_of("secret-token-123 {").find("secret"), std::string::npos) << "the line is not quoted back";
    EXPECT_NE(error_of("[1,2]").find("not a JSON object"), std::string::npos);
    EXPECT_NE(error_of(R"({"phase":"train"})").find("'type' missing"), std::string::npos);
    EXPECT_NE(error_of(R"({"type":"teleport"})").find("unknown message type"), std::string::npos);
    EXPECT_NE(error_of(R"({"type":"progress","phase":"train","cycle":1})").find("pairs"), std::string::npos);
    EXPECT_NE(error_of(R"({"type":"progress","phase":"train","cycle":"1","cycles":2})").find("not an integer"),
              std::string::npos);
    EXPECT_NE(error_of(R"({"type":"result","model":"/m"})").find("'provenance' missing"), std::string::npos);
    EXPECT_NE(error_of(R"({"type":"error","message":7})").find("not a string"), std::string::npos);
    json e = json::parse(to_protocol_line(sample_evaluation()));
    e["role"] = "previous";
    EXPECT_NE(error_of(e.dump()).find("role"), std::string::npos);
    e = json::parse(to_protocol_line(sample_evaluation()));
    e["gallery"][0]["embedding"].erase(0);
    EXPECT_NE(error_of(e.dump()).find("128"), std::string::npos);
    e = json::parse(to_protocol_line(sample_evaluation()));
    e["gallery"][1]["embedding"][5] = "x";
    EXPECT_NE(error_of(e.dump()).find("non-number"), std::string::npos);
    e = json::parse(to_protocol_line(sample_evaluation()));
    e["figures"]["site"].erase("groups");
    EXPECT_NE(error_of(e.dump()).find("groups"), std::string::npos);
    EXPECT_NE(error_of(std::string(kMaxChildLineBytes + 1, ' ')).find("limit"), std::string::npos);
}

TEST(ChildProtocol, UnknownMembersAreIgnored) {
    const auto p = std::get<ChildProgress>(
        parse_protocol_line(R"({"type":"progress","phase":"evaluate","gpu_temperature":71})"));
    EXPECT_EQ(p.phase, "evaluate");
    EXPECT_FALSE(p.cycle);
}

// Issue 12: each model's door figures (its calibrated operating point and where the pairs came
// from) travel as typed values; a malformed point is refused naming the member.
TEST(ChildProtocol, DoorFiguresRoundTripAndABadPointIsRefused) {
    ChildEvaluation e = sample_evaluation();
    std::vector<double> impostor;
    for (int i = 1; i <= 5000; ++i) impostor.push_back(0.4 + i / 5000.0);
    faceadapt::calib::CalibrationRequest r;
    r.target_far = 0.05;
    r.comparisons = 2;
    DoorFigures door;
    door.point = faceadapt::calib::calibrate(impostor, {0.1, 0.3, 0.45}, r);
    door.sources = {1, 4000, 999, 3, 0};
    e.figures.door = door;
    e.role = "best";
    const auto back = std::get<ChildEvaluation>(parse_protocol_line(to_protocol_line(e)));
    EXPECT_EQ(back.role, "best");
    ASSERT_TRUE(back.figures.door);
    EXPECT_EQ(back.figures.door->point.threshold, door.point.threshold);
    EXPECT_EQ(back.figures.door->point.frr, door.point.frr);
    EXPECT_EQ(back.figures.door->point.impostor_pairs, 5000u);
    EXPECT_EQ(back.figures.door->point.calibrated, door.point.calibrated);
    EXPECT_EQ(back.figures.door->sources.same_frame_impostor, 4000u);
    EXPECT_EQ(back.figures.door->sources.stranger_impostor, 999u);
    EXPECT_EQ(back.figures.door->measured_far(), door.measured_far());
    // Without "door" (a child before issue 12) the figures have none.
    EXPECT_FALSE(std::get<ChildEvaluation>(parse_protocol_line(to_protocol_line(sample_evaluation()))).figures.door);
    auto j = json::parse(to_protocol_line(e));
    j["figures"]["door"]["threshold"] = -1;
    EXPECT_NE(error_of(j.dump()).find("door figures: operating_point.threshold"), std::string::npos) << error_of(j.dump());
    j = json::parse(to_protocol_line(e));
    j["role"] = "other";
    EXPECT_NE(error_of(j.dump()).find("role"), std::string::npos);
}
