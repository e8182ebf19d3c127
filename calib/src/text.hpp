// Internal to faceadapt_calib: numbers in notes and reasons.
#pragma once

#include <cstdio>
#include <string>

namespace faceadapt::calib::detail {

// `v` printed with a printf format for one double ("%.4f", "%.3g").
inline std::string number(double v, const char* format) {
    char buf[48];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
}

}  // namespace faceadapt::calib::detail
