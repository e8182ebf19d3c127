// The console's pages, rendered on the server (internal to ui/). Every string that came from
// outside goes through html_escape; URLs built from it through url_encode.
// Thread safety: pure functions.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "faceadapt/ui/console.hpp"
#include "faceadapt/ui/sessions.hpp"

namespace faceadapt::ui::pages {

extern const char* const kCss;
extern const char* const kJs;

// The login form; `error` shown when not empty; `token` is the login form's CSRF token.
std::string login(const std::string& site, const std::string& error, const std::string& token);
// A page of the console: header with the navigation (`active` highlighted), user, logout.
std::string layout(const std::string& site, const std::string& title, const std::string& active,
                   const Session& session, const std::string& body);
// The live part of the overview (replaced every few seconds by console.js).
std::string overview_live(const nlohmann::json& overview);
std::string overview(const nlohmann::json& overview);
std::string people(const nlohmann::json& people, const Session& session, const std::string& flash,
                   const std::vector<EnrollResult>& results);
std::string models(const nlohmann::json& models, const nlohmann::json& doors, const Session& session,
                   const std::string& flash);
std::string unknown(const nlohmann::json& unknown, const nlohmann::json& people, const Session& session,
                    const std::string& flash, const std::vector<EnrollResult>& results);
std::string audit(const std::vector<nlohmann::json>& entries);
// A small error page body.
std::string message(const std::string& title, const std::string& text);

}  // namespace faceadapt::ui::pages
