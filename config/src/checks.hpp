// Internal to faceadapt_config: value checks shared by the schema (names, URLs, addresses) and
// the "did you mean" suggestions. Each check returns std::nullopt when the value is fine, or a
// message saying what was expected. Messages never contain a password.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace faceadapt::config::detail {

using Problem = std::optional<std::string>;

// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions), case-insensitive.
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate nearest to `word` when it is near enough to be a plausible misspelling.
std::optional<std::string> nearest(std::string_view word, const std::vector<std::string>& candidates);

// "; did you mean 'x'?" or "".
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

// [A-Za-z0-9_-]{1,64}: site and camera ids (they become MQTT topic segments).
Problem check_identifier(const std::string& value);
// An environment variable name: [A-Za-z_][A-Za-z0-9_]*.
Problem check_env_name(const std::string& value);
// A camera source: rtsp://host[:port]/..., rtsps://..., or file:///absolute/path (tests).
// A password inside the URL is refused (credentials come from password_file/password_env).
Problem check_camera_url(const std::string& url);
// An MQTT broker: tcp|ssl|mqtt|mqtts://host[:port], no credentials in it.
Problem check_broker_url(const std::string& url);
// host:port with port in [1, 65535] ("[::1]:9464" allowed).
Problem check_listen_address(const std::string& value);
// A host name or IP address without a port: 1-253 of A-Z a-z 0-9 . - or an IPv6 address in
// brackets ("[fd00::1]").
Problem check_host_name(const std::string& value);
// "" or "HH:MM-HH:MM" with distinct ends.
Problem check_quiet_hours(const std::string& value);

// Where a URL carries secrets: the password of its userinfo (all of a userinfo without a colon,
// which may be a token), and the value of every query, fragment or ';' parameter whose name
// says secret (password, pass, pwd, token, key, secret, auth, sig, session, ...). Offsets into
// `url`, in order; name is "userinfo" or the parameter's (percent-decoded) name.
struct SecretSpan {
    std::size_t begin, end;
    std::string name;
};
std::vector<SecretSpan> secret_spans(std::string_view url);
// %XX and '+' decoded (invalid escapes kept as they are).
std::string percent_decode(std::string_view text);

// Shortest text that reads back as the same double ("0.001", "3.5e-05", "60").
std::string format_number(double value);

}  // namespace faceadapt::config::detail
