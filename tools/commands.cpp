#include "commands.hpp"

#include <exception>
#include <optional>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "faceadapt/config/config.hpp"
#include "faceadapt/daemon/child_protocol.hpp"

namespace faceadapt::tools {

void run_guarded(CommandResult& result, const std::function<int()>& body) {
    try {
        result.exit_code = body();
    } catch (const config::ConfigError& e) {
        for (const auto& issue : e.issues()) spdlog::error("{}", issue.to_string());
        result.exit_code = 2;
    } catch (const std::invalid_argument& e) {
        spdlog::error("{}", e.what());
        result.exit_code = 2;
    } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
        result.exit_code = 1;
    }
}

void run_guarded_child(CommandResult& result, int protocol_fd,
                       const std::function<int(daemon::ProtocolWriter*)>& body) {
    std::optional<daemon::ProtocolWriter> protocol;
    if (protocol_fd >= 0) protocol.emplace(protocol_fd);
    run_guarded(result, [&] {
        try {
            return body(protocol ? &*protocol : nullptr);
        } catch (const std::exception& e) {
            if (protocol) protocol->write(daemon::ChildError{e.what()});
            throw;
        }
    });
}

}  // namespace faceadapt::tools
