#include "faceadapt/publish/mqtt_settings.hpp"

#include <stdexcept>

#include "util.hpp"

namespace faceadapt::publish {

config::MqttConfig apply_overrides(config::MqttConfig c, const MqttOverrides& o) {
    if (!o.broker.empty()) c.broker = o.broker;
    if (!o.client_id.empty()) c.client_id = o.client_id;
    if (!o.username.empty()) c.username = o.username;
    if (!o.password_file.empty()) {
        auto text = detail::read_file(o.password_file);
        auto end = text.find_first_of("\r\n");
        c.password_file = o.password_file;
        c.password = config::Secret(text.substr(0, end));
    }
    if (!o.ca_file.empty()) c.ca_file = o.ca_file;
    if (!o.cert_file.empty()) c.cert_file = o.cert_file;
    if (!o.key_file.empty()) c.key_file = o.key_file;
    bool known = false;
    for (const char* scheme : {"tcp://", "ssl://", "mqtt://", "mqtts://", "ws://", "wss://"})
        known = known || c.broker.starts_with(scheme);
    if (!known)
        throw std::invalid_argument("MQTT broker \"" + config::mask_url_credentials(c.broker) +
                                    "\" must start with tcp://, ssl://, mqtt:// or mqtts://");
    // As config check does for the site file: a broker URL never carries credentials (they would
    // reach every log line that names the broker).
    if (!config::url_secrets(c.broker).empty())
        throw std::invalid_argument("MQTT broker \"" + config::mask_url_credentials(c.broker) +
                                    "\" embeds credentials; use --username with --password-file");
    return c;
}

}  // namespace faceadapt::publish
