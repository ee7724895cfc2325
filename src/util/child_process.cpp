#include "util/child_process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace feuille {
namespace {

std::vector<std::string> build_env(const std::map<std::string, std::string>& extra, const std::optional<RunAs>& as) {
  std::map<std::string, std::string> merged;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    merged[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
  }
  if (as) {
    merged["HOME"] = as->home.empty() ? "/" : as->home;
    merged["USER"] = as->name;
    merged["LOGNAME"] = as->name;
  }
  for (const auto& [k, v] : extra) merged[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : merged) out.push_back(k + "=" + v);
  return out;
}

int decode_status(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st); }

// In the child, between fork and exec: only async-signal-safe calls.
[[noreturn]] void exec_child(const std::vector<char*>& argv, const std::vector<char*>& envp, const ChildOptions& o,
                             int out_fd, int err_pipe) {
  setpgid(0, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_DFL);
  if (out_fd >= 0) {
    dup2(out_fd, 1);
    dup2(out_fd, 2);
  }
  int null_fd = open("/dev/null", O_RDONLY);
  if (null_fd >= 0) dup2(null_fd, 0);
  if (o.run_as) {
    if (setgroups(0, nullptr) != 0 || setgid(o.run_as->gid) != 0 || setuid(o.run_as->uid) != 0) {
      int e = errno;
      (void)!write(err_pipe, &e, sizeof e);
      _exit(126);
    }
  }
  // After the uid change, which would clear it.
  if (o.parent_death_signal) prctl(PR_SET_PDEATHSIG, o.parent_death_signal);
  if (!o.working_dir.empty() && chdir(o.working_dir.c_str()) != 0) {
    int e = errno;
    (void)!write(err_pipe, &e, sizeof e);
    _exit(126);
  }
  execve(argv[0], argv.data(), envp.data());
  int e = errno;
  (void)!write(err_pipe, &e, sizeof e);
  _exit(127);
}

}  // namespace

std::optional<std::string> find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? std::optional(name) : std::nullopt;
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  for (const char* d : {"/usr/sbin", "/sbin"}) {
    std::string candidate = std::string(d) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

std::optional<RunAs> unprivileged_account() {
  for (const char* name : {"postgres", "nobody"}) {
    if (passwd* pw = getpwnam(name)) return RunAs{pw->pw_uid, pw->pw_gid, name, pw->pw_dir ? pw->pw_dir : "/"};
  }
  return std::nullopt;
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv_in, const ChildOptions& o) {
  std::vector<std::string> argv = argv_in;
  if (argv.empty()) throw std::invalid_argument("empty command");
  auto program = find_program(argv[0]);
  if (!program) throw std::runtime_error(argv[0] + ": not found");
  argv[0] = *program;
  auto env = build_env(o.env, o.run_as);
  std::vector<char*> cargv, cenv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  for (auto& e : env) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  int out_fd = -1;
  if (!o.stdout_file.empty()) {
    out_fd = open(o.stdout_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (out_fd < 0) throw std::runtime_error("cannot open " + o.stdout_file + ": " + std::strerror(errno));
    if (o.run_as) (void)!fchown(out_fd, o.run_as->uid, o.run_as->gid);
  }
  int errp[2];
  if (pipe2(errp, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  if (pid_ == 0) exec_child(cargv, cenv, o, out_fd, errp[1]);
  close(errp[1]);
  if (out_fd >= 0) close(out_fd);
  int child_errno = 0;
  ssize_t n = read(errp[0], &child_errno, sizeof child_errno);
  close(errp[0]);
  if (n == sizeof child_errno) {
    int st = 0;
    waitpid(pid_, &st, 0);
    pid_ = -1;
    throw std::runtime_error(argv_in[0] + ": cannot start: " + std::strerror(child_errno));
  }
}

ChildProcess::~ChildProcess() = default;

ChildProcess::ChildProcess(ChildProcess&& other) noexcept : pid_(other.pid_), status_(other.status_) { other.pid_ = -1; }

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  std::swap(pid_, other.pid_);
  std::swap(status_, other.status_);
  return *this;
}

bool ChildProcess::running() {
  if (pid_ <= 0 || status_) return false;
  int st = 0;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = decode_status(st);
    return false;
  }
  return r == 0;
}

std::optional<int> ChildProcess::wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return status_;
}

int ChildProcess::stop(int signo, std::chrono::milliseconds grace) {
  if (!running()) return status_.value_or(0);
  kill(pid_, signo);
  if (auto st = wait(grace)) return *st;
  kill(pid_, SIGKILL);
  return wait(std::chrono::seconds(5)).value_or(-1);
}

RunResult run_command(const std::vector<std::string>& argv, const ChildOptions& options_in,
                      std::chrono::milliseconds timeout) {
  // Output goes through a temporary file (readable by the target user).
  char path[] = "/tmp/feuille-cmd-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  close(fd);
  ChildOptions o = options_in;
  o.stdout_file = path;
  if (o.run_as) (void)!chown(path, o.run_as->uid, o.run_as->gid);
  RunResult result;
  try {
    ChildProcess child(argv, o);
    auto st = child.wait(timeout);
    if (!st) {
      child.stop(SIGKILL, std::chrono::seconds(1));
      result.status = -1;
    } else {
      result.status = *st;
    }
  } catch (...) {
    unlink(path);
    throw;
  }
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  result.output = ss.str();
  unlink(path);
  return result;
}

bool can_access(const RunAs& account, const std::string& dir) {
  pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setgid(account.gid) != 0 || setuid(account.uid) != 0) _exit(2);
    _exit(access(dir.c_str(), R_OK | W_OK | X_OK) == 0 ? 0 : 1);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

bool process_alive(pid_t pid, const std::string& needle) {
  if (pid <= 0) return false;
  if (kill(pid, 0) != 0) return errno == EPERM && needle.empty();
  if (needle.empty()) return true;
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (auto& c : cmd)
    if (c == '\0') c = ' ';
  return cmd.find(needle) != std::string::npos;
}

}  // namespace feuille
