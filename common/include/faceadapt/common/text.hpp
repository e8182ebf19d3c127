// Untrusted text made safe to log, print or put into JSON, and integers read from it.
//
// WHAT THIS REPRESENTS
//   Strings that came from outside (an envelope's key_id, a gallery name, a parser's message
//   quoting the bytes it choked on, a door's error text) may hold newlines that forge log
//   lines, ANSI escapes that rewrite a terminal, or invalid UTF-8 that nlohmann::json refuses
//   to serialise. printable() keeps valid UTF-8 text and replaces everything else.
//   Hand-written (about 40 lines) rather than ICU: we need only a UTF-8 validity check and a
//   control-character escape, not conversions or normalisation.
// THREAD SAFETY
//   Pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace faceadapt::common {

// ensures: valid UTF-8 without control characters: C0 controls, DEL and C1 controls become
//          "\xNN", invalid UTF-8 bytes become U+FFFD; cut at about `max_bytes` (whole
//          characters) with "..." appended when cut.
std::string printable(std::string_view text, std::size_t max_bytes = 300);

// true when `text` is valid UTF-8 without control characters (what printable() leaves as is).
bool is_printable_utf8(std::string_view text);

// The integer `text` spells in full: decimal digits with an optional leading '-' and nothing
// else (no blanks, no '+', no trailing characters), within int64_t; std::nullopt otherwise.
// For numbers from outside (a form field, a URL part, a config value), where std::stoll's
// leading blanks and ignored trailing characters would let "12abc" pass as 12.
std::optional<std::int64_t> parse_int(std::string_view text);

}  // namespace faceadapt::common
