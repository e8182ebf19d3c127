#include "checks.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <numeric>

#include "faceadapt/config/config.hpp"

namespace faceadapt::config::detail {
namespace {

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

// scheme://[userinfo@]host[:port][/rest]
struct UrlParts {
    std::string scheme;
    std::string userinfo;
    bool has_userinfo = false;
    std::string host;
    std::string port;
    bool has_port = false;
    std::string rest;  // from the first '/', '?' or '#' after the authority
};

std::optional<UrlParts> split_url(std::string_view url) {
    auto sep = url.find("://");
    if (sep == std::string_view::npos || sep == 0) return std::nullopt;
    UrlParts parts;
    parts.scheme.reserve(sep);
    for (char c : url.substr(0, sep)) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.')
            return std::nullopt;
        parts.scheme += lower(c);
    }
    std::string_view after = url.substr(sep + 3);
    auto end = after.find_first_of("/?#");
    std::string_view authority = after.substr(0, end);
    if (end != std::string_view::npos) parts.rest = std::string(after.substr(end));
    if (auto at = authority.rfind('@'); at != std::string_view::npos) {
        parts.has_userinfo = true;
        parts.userinfo = std::string(authority.substr(0, at));
        authority = authority.substr(at + 1);
    }
    if (!authority.empty() && authority.front() == '[') {
        auto close = authority.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        parts.host = std::string(authority.substr(0, close + 1));
        authority = authority.substr(close + 1);
        if (!authority.empty()) {
            if (authority.front() != ':') return std::nullopt;
            parts.has_port = true;
            parts.port = std::string(authority.substr(1));
        }
    } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        parts.host = std::string(authority.substr(0, colon));
        parts.has_port = true;
        parts.port = std::string(authority.substr(colon + 1));
    } else {
        parts.host = std::string(authority);
    }
    return parts;
}

bool valid_port(std::string_view port) {
    if (port.empty() || port.size() > 5) return false;
    int value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    return ec == std::errc{} && ptr == port.data() + port.size() && value >= 1 && value <= 65535;
}

bool has_space_or_control(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u <= 0x20 || u == 0x7f;
    });
}

// Host and port of a network URL; shared by cameras and the broker.
Problem check_authority(const UrlParts& parts, const std::string& shown) {
    if (parts.host.empty()) return "'" + shown + "' has no host";
    if (parts.has_port && !valid_port(parts.port))
        return "'" + shown + "' has a bad port '" + parts.port + "' (expected 1..65535)";
    return std::nullopt;
}


// Parameter names that say their value is a secret (case-insensitive, after percent-decoding):
// any name containing one of these. Over-masking a harmless parameter ("keyframe") costs a log
// line its value; under-masking leaks a password, so the list errs on the wide side.
constexpr std::string_view kSecretNameParts[] = {"pass", "pwd", "pw", "token", "secret", "key", "auth",
                                                 "cred", "sig", "session", "cookie", "private", "pin"};

bool secret_name(std::string_view name) {
    std::string lowered;
    for (char c : percent_decode(name)) lowered += lower(c);
    return std::any_of(std::begin(kSecretNameParts), std::end(kSecretNameParts),
                       [&](std::string_view part) { return lowered.find(part) != std::string::npos; });
}

}  // namespace

std::string percent_decode(std::string_view text) {
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        c = lower(c);
        return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    };
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
            out += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
            i += 2;
        } else {
            out += text[i] == '+' ? ' ' : text[i];
        }
    }
    return out;
}

std::vector<SecretSpan> secret_spans(std::string_view url) {
    std::vector<SecretSpan> spans;
    std::size_t rest = 0;  // where the path/query/fragment starts
    if (const auto sep = url.find("://"); sep != std::string_view::npos) {
        const std::size_t start = sep + 3;
        const std::size_t end = std::min(url.find_first_of("/?#", start), url.size());
        rest = end;
        const std::string_view authority = url.substr(start, end - start);
        if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
            // user:password@ -> the part after the first colon (RFC 3986 3.2.1); a userinfo
            // without a colon may be a token (https://TOKEN@host): all of it.
            const auto colon = authority.substr(0, at).find(':');
            const std::size_t from = colon == std::string_view::npos ? 0 : colon + 1;
            spans.push_back({start + from, start + at, "userinfo"});
        }
    }
    // name=value pairs of the query and the fragment (and ';' parameters), wherever they are.
    const std::size_t q = url.find_first_of("?#;", rest);
    if (q == std::string_view::npos) return spans;
    std::size_t pos = q + 1;
    while (pos <= url.size()) {
        std::size_t end = url.find_first_of("&;#?", pos);
        if (end == std::string_view::npos) end = url.size();
        const std::string_view pair = url.substr(pos, end - pos);
        if (const auto eq = pair.find('='); eq != std::string_view::npos && secret_name(pair.substr(0, eq)))
            spans.push_back({pos + eq + 1, end, percent_decode(pair.substr(0, eq))});
        pos = end + 1;
    }
    return spans;
}

namespace {
// The name of the first query/fragment parameter that carries a secret, if any.
std::optional<std::string> secret_parameter(const std::string& url) {
    for (const auto& span : secret_spans(url))
        if (span.name != "userinfo") return span.name;
    return std::nullopt;
}

}  // namespace

std::size_t edit_distance(std::string_view a, std::string_view b) {
    const std::size_t n = a.size(), m = b.size();
    std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
    for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= n; ++i) {
        for (std::size_t j = 1; j <= m; ++j) {
            const std::size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
                lower(a[i - 2]) == lower(b[j - 1]))
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    }
    return d[n][m];
}

std::optional<std::string> nearest(std::string_view word,
                                   const std::vector<std::string>& candidates) {
    // Short words tolerate one edit; longer ones about a third of their length.
    const std::size_t allowed = word.size() <= 4 ? 1 : std::max<std::size_t>(2, word.size() / 3);
    std::optional<std::string> best;
    std::size_t best_distance = allowed + 1;
    for (const auto& candidate : candidates) {
        const std::size_t distance = edit_distance(word, candidate);
        if (distance < best_distance) {
            best_distance = distance;
            best = candidate;
        }
    }
    return best;
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
    if (auto best = nearest(word, candidates)) return "; did you mean '" + *best + "'?";
    return "";
}

Problem check_identifier(const std::string& value) {
    const bool ok = !value.empty() && value.size() <= 64 &&
                    std::all_of(value.begin(), value.end(), [](char c) {
                        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
                    });
    if (ok) return std::nullopt;
    return "expected 1 to 64 characters from [A-Za-z0-9_-], got '" + value + "'";
}

Problem check_env_name(const std::string& value) {
    const bool ok = !value.empty() &&
                    !std::isdigit(static_cast<unsigned char>(value.front())) &&
                    std::all_of(value.begin(), value.end(), [](char c) {
                        return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
                    });
    if (ok) return std::nullopt;
    return "expected an environment variable name ([A-Za-z_][A-Za-z0-9_]*), got '" + value + "'";
}

Problem check_camera_url(const std::string& url) {
    const std::string shown = mask_url_credentials(url);
    if (has_space_or_control(url)) return "'" + shown + "' contains spaces or control characters";
    auto parts = split_url(url);
    if (!parts)
        return "expected a URL such as rtsp://127.0.0.1:8554/cam, got '" + shown + "'";
    if (parts->scheme == "file") {
        if (parts->has_userinfo || !parts->host.empty() || parts->rest.size() < 2 ||
            parts->rest.front() != '/')
            return "expected file:///absolute/path, got '" + shown + "'";
        return std::nullopt;
    }
    if (parts->scheme != "rtsp" && parts->scheme != "rtsps")
        return "expected an rtsp://, rtsps:// or file:// URL, got scheme '" + parts->scheme + "'";
    if (parts->userinfo.find(':') != std::string::npos)
        return "'" + shown + "' embeds a password; put the user name in 'username' and the "
               "password in password_file or password_env";
    if (auto name = secret_parameter(url))
        return "'" + shown + "' carries a secret in its parameter '" + *name + "'; put the user name in "
               "'username' and the password in password_file or password_env";
    return check_authority(*parts, shown);
}

Problem check_broker_url(const std::string& url) {
    const std::string shown = mask_url_credentials(url);
    auto parts = split_url(url);
    if (!parts || has_space_or_control(url))
        return "expected a broker URL such as tcp://127.0.0.1:1883, got '" + shown + "'";
    static constexpr std::string_view schemes[] = {"tcp", "ssl", "mqtt", "mqtts"};
    if (std::find(std::begin(schemes), std::end(schemes), parts->scheme) == std::end(schemes))
        return "expected a tcp://, ssl://, mqtt:// or mqtts:// URL, got scheme '" +
               parts->scheme + "'";
    if (parts->has_userinfo || secret_parameter(url))
        return "'" + shown + "' embeds credentials; use mqtt.username with password_file or "
               "password_env";
    if (!parts->rest.empty() && parts->rest != "/")
        return "'" + shown + "' has a path; expected scheme://host[:port]";
    return check_authority(*parts, shown);
}

Problem check_listen_address(const std::string& value) {
    const auto colon = value.rfind(':');
    const bool ok = colon != std::string::npos && colon > 0 && !has_space_or_control(value) &&
                    valid_port(std::string_view(value).substr(colon + 1));
    if (ok) return std::nullopt;
    return "expected host:port with port 1..65535 (e.g. 127.0.0.1:9464), got '" + value + "'";
}

Problem check_host_name(const std::string& value) {
    const bool v6 = value.size() > 2 && value.front() == '[' && value.back() == ']' &&
                    std::all_of(value.begin() + 1, value.end() - 1, [](char c) {
                        return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
                    });
    const bool name = !value.empty() && value.size() <= 253 && std::all_of(value.begin(), value.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-';
    });
    if (v6 || name) return std::nullopt;
    return std::string("expected a host name or IP address without a port (1-253 of A-Z a-z 0-9 . -, or [IPv6])");
}

Problem check_quiet_hours(const std::string& value) {
    if (value.empty()) return std::nullopt;
    auto minutes = [](std::string_view hhmm) -> int {
        if (hhmm.size() != 5 || hhmm[2] != ':') return -1;
        int h = 0, m = 0;
        if (std::from_chars(hhmm.data(), hhmm.data() + 2, h).ptr != hhmm.data() + 2) return -1;
        if (std::from_chars(hhmm.data() + 3, hhmm.data() + 5, m).ptr != hhmm.data() + 5) return -1;
        return (h >= 0 && h < 24 && m >= 0 && m < 60) ? h * 60 + m : -1;
    };
    const std::string_view v = value;
    const bool shape = v.size() == 11 && v[5] == '-';
    const int from = shape ? minutes(v.substr(0, 5)) : -1;
    const int to = shape ? minutes(v.substr(6, 5)) : -1;
    if (from < 0 || to < 0)
        return "expected \"\" or \"HH:MM-HH:MM\" (24-hour clock, e.g. \"01:00-05:00\"), got '" +
               value + "'";
    if (from == to) return "'" + value + "' is an empty window; its two ends must differ";
    return std::nullopt;
}

std::string format_number(double value) {
    // Whole numbers as integers ("100000", not to_chars' shortest "1e+05").
    if (std::isfinite(value) && value == std::trunc(value) && std::fabs(value) < 1e15)
        return std::to_string(static_cast<long long>(value));
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
    return ec == std::errc{} ? std::string(buf, end) : std::string("nan");
}

}  // namespace faceadapt::config::detail

namespace faceadapt::config {

std::string mask_url_credentials(const std::string& url) {
    std::string out = url;
    const auto spans = detail::secret_spans(url);
    for (auto it = spans.rbegin(); it != spans.rend(); ++it) out.replace(it->begin, it->end - it->begin, "***");
    return out;
}

std::vector<std::string> url_secrets(const std::string& url) {
    std::vector<std::string> out;
    for (const auto& span : detail::secret_spans(url)) {
        if (span.end <= span.begin) continue;
        std::string raw = url.substr(span.begin, span.end - span.begin);
        std::string decoded = detail::percent_decode(raw);
        if (decoded != raw && !decoded.empty()) out.push_back(std::move(decoded));
        out.push_back(std::move(raw));
    }
    return out;
}

}  // namespace faceadapt::config
