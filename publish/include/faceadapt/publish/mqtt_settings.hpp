// Command-line overrides of config::MqttConfig, shared by `faceadapt publish` and `faceadapt-door`.
//
// WHAT THIS REPRESENTS
//   The MQTT flags an operator may give; each one set replaces the config file's value, so the
//   commands work without a config file too.
// THREAD SAFETY
//   Plain values and a pure function (apart from reading the password file).
#pragma once

#include <filesystem>
#include <string>

#include "faceadapt/config/config.hpp"

namespace faceadapt::publish {

struct MqttOverrides {
    std::string broker;                    // tcp:// ssl:// mqtt:// mqtts://
    std::string client_id;
    std::string username;
    std::filesystem::path password_file;   // first line is the password
    std::filesystem::path ca_file;
    std::filesystem::path cert_file;
    std::filesystem::path key_file;
};

// ensures: `base` with every non-empty override applied; the password read from password_file.
// throws:  std::runtime_error naming the password file when it cannot be read;
//          std::invalid_argument naming the broker when it has no supported scheme.
config::MqttConfig apply_overrides(config::MqttConfig base, const MqttOverrides& overrides);

}  // namespace faceadapt::publish
