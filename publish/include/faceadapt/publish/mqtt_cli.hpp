// The MQTT command-line flags of `faceadapt publish` and `faceadapt-door run` (header-only;
// only the tools include it, with CLI11).
#pragma once

#include <CLI/CLI.hpp>

#include "faceadapt/publish/mqtt_settings.hpp"

namespace faceadapt::publish {

// Adds --broker --client-id --username --password-file --ca --client-cert --client-key, filling `o`.
// `o` must outlive the parse.
inline void add_mqtt_flags(CLI::App* cmd, MqttOverrides& o) {
    cmd->add_option("--broker", o.broker, "MQTT broker URL (tcp://, ssl://, mqtt://, mqtts://)");
    cmd->add_option("--client-id", o.client_id, "MQTT client id");
    cmd->add_option("--username", o.username, "MQTT user name");
    cmd->add_option("--password-file", o.password_file, "file whose first line is the MQTT password")->check(CLI::ExistingFile);
    cmd->add_option("--ca", o.ca_file, "CA certificate (PEM) that signed the broker's certificate")->check(CLI::ExistingFile);
    cmd->add_option("--client-cert", o.cert_file, "client certificate (PEM), for brokers that require one")->check(CLI::ExistingFile);
    cmd->add_option("--client-key", o.key_file, "private key (PEM) of --client-cert")->check(CLI::ExistingFile);
}

}  // namespace faceadapt::publish
