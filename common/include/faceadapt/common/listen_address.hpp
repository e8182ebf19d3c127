// "host:port" as the daemon's endpoints take it ([metrics] listen, [ui] listen).
// Thread safety: pure function.
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace faceadapt::common {

// "127.0.0.1:9464" -> {"127.0.0.1", 9464}; "[::1]:9464" -> {"::1", 9464}.
// throws std::invalid_argument naming `what` and the text when it is not host:port with port
// 0..65535 (e.g. what = "metrics listen address").
std::pair<std::string, int> parse_listen_address(const std::string& listen, std::string_view what);

}  // namespace faceadapt::common
