// The door's decision for one probe against an installed gallery (calib/decision.hpp's rule).
//
// WHAT THIS REPRESENTS
//   The probe's Euclidean distance to every gallery entry, handed to calib::decide() with the
//   package's threshold and ambiguity margin (Manifest::decision_margin(): 0 for packages before
//   issue 12, which keeps the rule those doors applied).
// THREAD SAFETY
//   Pure function.
#pragma once

#include "faceadapt/calib/decision.hpp"
#include "faceadapt/publish/package.hpp"

namespace faceadapt::publish {

// gallery.threshold is the threshold; margin >= 0.
calib::DoorDecision decide_probe(const Gallery& gallery, double margin, const Embedding& probe);

}  // namespace faceadapt::publish
