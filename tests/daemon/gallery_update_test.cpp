// Gallery updates (issue 18, item 1): when faceadaptd ships one, and that the gallery's revision
// travels from the evaluation child (protocol line) to the release. The whole path, on real
// processes, is DaemonGalleryUpdate in daemon_e2e_test.cpp.
#include <gtest/gtest.h>

#include "faceadapt/daemon/child_protocol.hpp"
#include "faceadapt/daemon/gallery_update.hpp"

using namespace faceadapt::daemon;

TEST(GalleryUpdateDecision, ShipsWhenTheGalleryMovedPastWhatTheCurrentVersionCarries) {
    EXPECT_FALSE(decide_gallery_update(0, nlohmann::json::object(), 0).update) << "fresh site: nothing to ship";
    EXPECT_TRUE(decide_gallery_update(0, nlohmann::json::object(), 3).update) << "enrolled before any cycle";
    EXPECT_FALSE(decide_gallery_update(4, {{"gallery_revision", 7}}, 7).update);
    const auto moved = decide_gallery_update(4, {{"gallery_revision", 7}}, 9);
    EXPECT_TRUE(moved.update);
    EXPECT_NE(moved.reason.find("revision 7"), std::string::npos) << moved.reason;
    EXPECT_TRUE(decide_gallery_update(4, {{"gallery_revision", 7}}, 6).update) << "a restored older gallery ships too";
    EXPECT_TRUE(decide_gallery_update(4, {{"origin", "train"}}, 2).update) << "released before revisions: unknown";
    EXPECT_TRUE(decide_gallery_update(4, {{"gallery_revision", "7"}}, 7).update) << "not an integer: unknown";
    // A gallery update whose publication failed is published again, as the same version.
    const nlohmann::json unsent{{"origin", "gallery update of 3"}, {"gallery_revision", 7}, {"published", false}};
    const auto again = decide_gallery_update(4, unsent, 7);
    EXPECT_TRUE(again.update && again.republish) << again.reason;
    EXPECT_FALSE(decide_gallery_update(4, {{"origin", "rollback of 2"}, {"gallery_revision", 7}}, 7).update)
        << "a rollback's publication is the CLI's";
    EXPECT_FALSE(decide_gallery_update(4, {{"origin", "gallery update of 3"}, {"gallery_revision", 7}, {"published", true}}, 7).update);
}

TEST(GalleryUpdateDecision, TheRevisionTravelsOnTheProtocolAndIsOptional) {
    ChildEvaluation e;
    e.role = "candidate";
    e.gallery.names = {"alice"};
    e.gallery.embeddings.push_back({});
    e.gallery.revision = 12;
    const auto back = std::get<ChildEvaluation>(parse_protocol_line(to_protocol_line(e)));
    EXPECT_EQ(back.gallery.revision, 12);
    EXPECT_EQ(back.gallery.names, e.gallery.names);
    e.gallery.revision = -1;  // an older child says nothing
    const std::string line = to_protocol_line(e);
    EXPECT_EQ(line.find("gallery_revision"), std::string::npos);
    EXPECT_EQ(std::get<ChildEvaluation>(parse_protocol_line(line)).gallery.revision, -1);
    nlohmann::json bad = nlohmann::json::parse(line);
    bad["gallery_revision"] = -3;
    EXPECT_THROW(parse_protocol_line(bad.dump()), ProtocolError);
}
