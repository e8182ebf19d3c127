#include "commands.hpp"

#include <exception>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "faceadapt/config/config.hpp"

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

}  // namespace faceadapt::tools
