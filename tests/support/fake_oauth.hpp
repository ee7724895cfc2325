#pragma once
// A fake OAuth provider on 127.0.0.1 that speaks the real protocol of
// GitHub (authorize redirect, form code exchange answering JSON, /user,
// /user/emails) and Google (authorize, token, OpenID userinfo), over plain
// HTTP or over HTTPS with certificates from a test CA made at test time
// (trusted by feuilled through SSL_CERT_FILE). Switches make it misbehave.
// It runs its own io_context on a thread of the test process.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "support/process.hpp"

namespace feuille::test {

// Certificates made with the openssl CLI in a temporary folder.
struct TestCerts {
  TestCerts();
  TempDir dir;
  std::string ca_file;                           // the CA feuilled trusts (SSL_CERT_FILE)
  std::string good_cert, good_key;               // localhost and 127.0.0.1, signed by the CA
  std::string wrong_name_cert, wrong_name_key;   // wrong.example, signed by the CA
  std::string untrusted_cert, untrusted_key;     // localhost, signed by a CA nobody trusts
};

struct FakeUser {
  // GitHub
  long long github_id = 1001;
  std::string login = "octocat";
  // Google
  std::string sub = "g-1001";
  std::string hd;  // hosted domain claim ("" = none)
  // Both
  std::string name = "The Octocat";
  std::string email = "octocat@example.org";
  bool email_verified = true;
  std::string avatar_url = "https://avatars.example.org/u/1001";
};

class FakeOAuth {
 public:
  enum class Tls { none, good, wrong_name, untrusted };
  enum class Endpoint { token, user, emails, userinfo };
  enum class Fault { none, error_json, status_500, slow, huge, garbage };

  static constexpr const char* kGitHubId = "gh-client-id";
  static constexpr const char* kGitHubSecret = "gh-client-secret";
  static constexpr const char* kGoogleId = "go-client-id";
  static constexpr const char* kGoogleSecret = "go-client-secret";

  // certs is required unless tls is none.
  explicit FakeOAuth(Tls tls = Tls::none, const TestCerts* certs = nullptr);
  ~FakeOAuth();
  FakeOAuth(const FakeOAuth&) = delete;
  FakeOAuth& operator=(const FakeOAuth&) = delete;

  int port() const;
  // http://127.0.0.1:P, or https://localhost:P (so that SNI and the name check run).
  std::string base_url() const;
  // feuilled arguments pointing GitHub / Google sign-in at this provider.
  std::vector<std::string> github_args() const;
  std::vector<std::string> google_args() const;

  // The user the authorize endpoint signs in next.
  void set_user(const FakeUser& u);
  // A code for this user, as the authorize endpoint would hand out.
  std::string issue_code(const FakeUser& u);
  // The authorize endpoint sends back a state other than the one it got.
  void set_wrong_state(bool on);
  // One endpoint misbehaves (Fault::none heals it). slow waits slow_ms.
  void fail(Endpoint at, Fault f, int slow_ms = 4000);

  // What the token endpoint received last (form fields) and headers seen.
  std::map<std::string, std::string> last_token_form() const;
  std::string last_user_agent() const;
  int requests(Endpoint e) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace feuille::test
