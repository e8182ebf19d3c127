// HTML escaping for everything the console renders that came from outside (camera ids, person
// names, file names, reasons, user names).
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace faceadapt::ui {

// & < > " ' escaped as entities; bytes below 0x20 except \t\n\r dropped. Safe in element text
// and in quoted attribute values.
std::string html_escape(std::string_view text);
// Percent-encoding of a path segment or a query value (unreserved characters kept).
std::string url_encode(std::string_view text);

}  // namespace faceadapt::ui
