#pragma once
// A private PostgreSQL cluster for `feuilled --dev` and for the tests: the
// installed server binaries, a data folder of its own, a unix socket only.
//
// Layout: <dir>/data (the cluster), <dir>/postgres.log, and the socket in
// <dir>/run, or, when that path is too long for a unix socket (107 bytes) or
// the PostgreSQL account cannot reach it, in /tmp/feuille-pg-<hash>. When
// feuilled runs as root, PostgreSQL runs as an unprivileged account
// ("postgres", else "nobody"); if that account cannot reach <dir> at all, the
// cluster lives in /var/lib/feuille-dev/<hash>/ instead (noted in
// <dir>/LOCATION).
#include <chrono>
#include <optional>
#include <string>

#include "util/child_process.hpp"

namespace feuille::dev {

class EmbeddedPostgres {
 public:
  // `tie_to_parent`: the server dies with this process (dev mode). Test
  // fixtures that outlive their setup process pass false.
  EmbeddedPostgres(std::string dir, bool tie_to_parent = true);
  ~EmbeddedPostgres();  // stops the server if this object started it
  EmbeddedPostgres(const EmbeddedPostgres&) = delete;
  EmbeddedPostgres& operator=(const EmbeddedPostgres&) = delete;

  // initdb when needed, recover from a stale postmaster.pid, start, wait until
  // it accepts connections, create the "feuille" database. Throws
  // std::runtime_error with a one-line reason.
  void start(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // Fast shutdown; waits for the server to exit.
  void stop();
  // Stops a server left running for `dir` by another process (tests).
  static void stop_running(const std::string& dir);

  // A libpq URI for the "feuille" database (or another database name).
  std::string url(const std::string& database = "feuille") const;
  const std::string& data_dir() const { return data_dir_; }
  const std::string& socket_dir() const { return socket_dir_; }
  pid_t pid() const { return server_.pid(); }

  // The server binaries' folder: `pg_config --bindir` if it holds `postgres`,
  // else the newest /usr/lib/postgresql/*/bin.
  static std::string find_bindir();

 private:
  void resolve_layout();
  void recover_stale_pid();
  std::string dir_;
  bool tie_to_parent_;
  std::string base_;  // where data/ and the log live
  std::string data_dir_;
  std::string socket_dir_;
  std::string bindir_;
  std::optional<RunAs> run_as_;
  ChildProcess server_;
  bool started_ = false;
};

}  // namespace feuille::dev
