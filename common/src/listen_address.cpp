#include "faceadapt/common/listen_address.hpp"

#include <stdexcept>

#include "faceadapt/common/text.hpp"

namespace faceadapt::common {

std::pair<std::string, int> parse_listen_address(const std::string& listen, std::string_view what) {
    const std::string name(what);
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == listen.size())
        throw std::invalid_argument(name + " '" + listen + "' is not host:port");
    std::string host = listen.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    const std::string port_text = listen.substr(colon + 1);
    const auto port = parse_int(port_text);
    if (!port || *port < 0 || *port > 65535) throw std::invalid_argument(name + " '" + listen + "': port must be 0..65535");
    return {host, static_cast<int>(*port)};
}

}  // namespace faceadapt::common
