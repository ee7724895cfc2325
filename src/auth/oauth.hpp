#pragma once
// The OAuth providers people sign in with: GitHub (OAuth app, authorization
// code flow) and Google (OpenID Connect, code flow + userinfo). A provider
// builds the authorize redirect and turns a callback's code into a profile;
// the auth module does the rest (state, users, sessions).
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "db/users.hpp"
#include "feuille/config.hpp"
#include "http/client.hpp"

namespace feuille::auth {

// The provider failed, timed out or answered something unusable (→ 502).
// what() is safe to log: no token, code or secret in it.
struct ProviderError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The provider answered fine but this account may not sign in here, e.g. an
// unverified Google email or another hosted domain (→ 403 with the message).
struct ProfileRefused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class OAuthProvider {
 public:
  virtual ~OAuthProvider() = default;
  virtual std::string_view name() const = 0;   // "github": in routes and states
  virtual std::string_view title() const = 0;  // "GitHub": on pages
  // Where to send the browser (authorize endpoint with every parameter).
  virtual std::string authorize_url(std::string_view state, std::string_view redirect_uri) const = 0;
  // Exchanges the code and reads who signed in. Throws ProviderError or ProfileRefused.
  virtual boost::asio::awaitable<db::ExternalProfile> profile(std::string code, std::string redirect_uri) = 0;
};

// nullptr when the provider is not configured (no client id).
std::unique_ptr<OAuthProvider> make_github(const Config& c, boost::asio::any_io_executor ex, Duration timeout);
std::unique_ptr<OAuthProvider> make_google(const Config& c, boost::asio::any_io_executor ex, Duration timeout);

}  // namespace feuille::auth
