#include "dev/embedded_postgres.hpp"

#include <libpq-fe.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "util/digest.hpp"

namespace fs = std::filesystem;

namespace feuille::dev {
namespace {

std::string short_hash(const std::string& s) { return util::sha256_hex(s, 16); }

void make_owned_dir(const std::string& path, const std::optional<RunAs>& owner) {
  fs::create_directories(path);
  if (owner && chown(path.c_str(), owner->uid, owner->gid) != 0)
    throw std::runtime_error("cannot give " + path + " to " + owner->name);
  chmod(path.c_str(), 0700);
}

std::string last_lines(const std::string& text, int n) {
  std::vector<std::string> lines;
  std::stringstream ss(text);
  for (std::string l; std::getline(ss, l);)
    if (!l.empty()) lines.push_back(l);
  std::string out;
  for (std::size_t i = lines.size() > static_cast<std::size_t>(n) ? lines.size() - n : 0; i < lines.size(); ++i)
    out += (out.empty() ? "" : " | ") + lines[i];
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string uri_encode(const std::string& s) {
  std::string out;
  static const char* hex = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') out.push_back(static_cast<char>(c));
    else out += {'%', hex[c >> 4], hex[c & 15]};
  }
  return out;
}

pid_t read_pid(const std::string& pid_file) {
  std::ifstream in(pid_file);
  long pid = 0;
  if (!(in >> pid)) return 0;
  return static_cast<pid_t>(pid);
}

void wait_gone(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (kill(pid, 0) == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (kill(pid, 0) == 0) {
    kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace

std::string EmbeddedPostgres::find_bindir() {
  if (auto pg_config = find_program("pg_config")) {
    auto r = run_command({*pg_config, "--bindir"}, {}, std::chrono::seconds(10));
    std::string dir = r.output.substr(0, r.output.find('\n'));
    if (r.status == 0 && access((dir + "/postgres").c_str(), X_OK) == 0) return dir;
  }
  std::string best;
  int best_version = -1;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    std::string name = entry.path().filename().string();
    int v = std::atoi(name.c_str());
    if (v > best_version && access((entry.path() / "bin/postgres").c_str(), X_OK) == 0) {
      best_version = v;
      best = (entry.path() / "bin").string();
    }
  }
  if (best.empty())
    throw std::runtime_error("no PostgreSQL server binaries (pg_config --bindir, /usr/lib/postgresql/*/bin); install postgresql");
  return best;
}

EmbeddedPostgres::EmbeddedPostgres(std::string dir, bool tie_to_parent)
    : dir_(fs::absolute(dir).lexically_normal().string()), tie_to_parent_(tie_to_parent) {
  if (!dir_.empty() && dir_.back() == '/') dir_.pop_back();
  if (geteuid() == 0) {
    run_as_ = unprivileged_account();
    if (!run_as_) throw std::runtime_error("running as root and no unprivileged account (postgres, nobody) for PostgreSQL");
  }
}

EmbeddedPostgres::~EmbeddedPostgres() {
  try {
    stop();
  } catch (...) {
  }
}

void EmbeddedPostgres::resolve_layout() {
  fs::create_directories(dir_);
  base_ = dir_;
  std::string location_file = dir_ + "/LOCATION";
  if (run_as_) {
    std::string recorded = read_file(location_file);
    if (!recorded.empty()) {
      base_ = recorded.substr(0, recorded.find('\n'));
    } else {
      make_owned_dir(dir_, run_as_);
      if (!can_access(*run_as_, dir_)) {
        // The account cannot traverse to the state folder (e.g. under /root).
        base_ = "/var/lib/feuille-dev/" + short_hash(dir_);
        fs::create_directories("/var/lib/feuille-dev");
        chmod("/var/lib/feuille-dev", 0755);
        std::ofstream(location_file) << base_ << "\n";
      }
    }
  }
  make_owned_dir(base_, run_as_);
  data_dir_ = base_ + "/data";
  socket_dir_ = base_ + "/run";
  bool too_long = (socket_dir_ + "/.s.PGSQL.5432").size() > 107;
  if (too_long || (run_as_ && base_ == dir_ && !can_access(*run_as_, base_)))
    socket_dir_ = "/tmp/feuille-pg-" + short_hash(dir_);
  struct stat st{};
  if (lstat(socket_dir_.c_str(), &st) == 0) {
    uid_t want = run_as_ ? run_as_->uid : geteuid();
    if (!S_ISDIR(st.st_mode) || st.st_uid != want)
      throw std::runtime_error(socket_dir_ + " exists and is not a folder owned by the PostgreSQL account");
  }
  make_owned_dir(socket_dir_, run_as_);
}

void EmbeddedPostgres::recover_stale_pid() {
  std::string pid_file = data_dir_ + "/postmaster.pid";
  pid_t pid = read_pid(pid_file);
  if (pid <= 0) return;
  if (process_alive(pid, "postgres")) {
    // A server of an earlier run (its feuilled was killed): stop it cleanly.
    kill(pid, SIGINT);
    wait_gone(pid, std::chrono::seconds(30));
  }
  std::error_code ec;
  fs::remove(pid_file, ec);
  fs::remove(socket_dir_ + "/.s.PGSQL.5432.lock", ec);
}

void EmbeddedPostgres::start(std::chrono::milliseconds timeout) {
  resolve_layout();
  bindir_ = find_bindir();
  ChildOptions as_pg;
  as_pg.run_as = run_as_;
  as_pg.working_dir = base_;
  as_pg.env["LC_ALL"] = "C";

  if (!fs::exists(data_dir_ + "/PG_VERSION")) {
    std::error_code ec;
    fs::remove_all(data_dir_, ec);  // an initdb that was interrupted
    auto r = run_command({bindir_ + "/initdb", "-D", data_dir_, "-U", "feuille", "-A", "trust", "-E", "UTF8",
                          "--locale=C", "--no-instructions"},
                         as_pg, std::chrono::seconds(180));
    if (r.status != 0) throw std::runtime_error("initdb failed: " + last_lines(r.output, 3));
  }
  recover_stale_pid();

  ChildOptions server_opts = as_pg;
  server_opts.stdout_file = base_ + "/postgres.log";
  server_opts.parent_death_signal = tie_to_parent_ ? SIGINT : 0;
  std::vector<std::string> argv{bindir_ + "/postgres", "-D", data_dir_, "-k", socket_dir_, "-c", "listen_addresses=",
                                "-c", "unix_socket_permissions=0700", "-c", "max_connections=200"};
  server_ = ChildProcess(argv, server_opts);
  started_ = true;

  std::string admin = url("postgres");
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (PQping(admin.c_str()) == PQPING_OK) break;
    if (!server_.running()) {
      started_ = false;
      throw std::runtime_error("PostgreSQL exited at start: " + last_lines(read_file(base_ + "/postgres.log"), 3));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      stop();
      throw std::runtime_error("PostgreSQL did not accept connections in time (see " + base_ + "/postgres.log)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }

  PGconn* c = PQconnectdb(admin.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string err = PQerrorMessage(c);
    PQfinish(c);
    throw std::runtime_error("cannot connect to the embedded PostgreSQL: " + err);
  }
  PGresult* r = PQexec(c, "SELECT 1 FROM pg_database WHERE datname = 'feuille'");
  bool exists = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
  PQclear(r);
  if (!exists) {
    r = PQexec(c, "CREATE DATABASE feuille");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    std::string err = PQerrorMessage(c);
    PQclear(r);
    if (!ok && err.find("already exists") == std::string::npos) {
      PQfinish(c);
      throw std::runtime_error("cannot create database feuille: " + err);
    }
  }
  PQfinish(c);
}

void EmbeddedPostgres::stop() {
  if (!started_) return;
  started_ = false;
  server_.stop(SIGINT, std::chrono::seconds(30));
}

void EmbeddedPostgres::stop_running(const std::string& dir) {
  EmbeddedPostgres pg(dir, false);
  pg.resolve_layout();
  pid_t pid = read_pid(pg.data_dir_ + "/postmaster.pid");
  if (pid > 0 && process_alive(pid, "postgres")) {
    kill(pid, SIGINT);
    wait_gone(pid, std::chrono::seconds(30));
  }
}

std::string EmbeddedPostgres::url(const std::string& database) const {
  return "postgresql:///" + database + "?host=" + uri_encode(socket_dir_) + "&user=feuille";
}

}  // namespace feuille::dev
