#include "support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <stdexcept>

extern char** environ;

namespace feuille::test {

Process::Process(std::vector<std::string> argv, std::map<std::string, std::string> env, std::string working_dir) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  std::map<std::string, std::string> merged;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    merged[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
  }
  for (auto& [k, v] : env) {
    if (v == "\x01unset") merged.erase(k);
    else merged[k] = v;
  }
  std::vector<std::string> env_strings;
  for (auto& [k, v] : merged) env_strings.push_back(k + "=" + v);
  std::vector<char*> cargv, cenv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  for (auto& e : env_strings) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    setpgid(0, 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    if (!working_dir.empty() && chdir(working_dir.c_str()) != 0) _exit(126);
    execve(cargv[0], cargv.data(), cenv.data());
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  out_fd_ = out[0];
  err_fd_ = err[0];
  fcntl(out_fd_, F_SETFL, O_NONBLOCK);
  fcntl(err_fd_, F_SETFL, O_NONBLOCK);
  reader_ = std::thread([this] { drain(); });
}

Process::~Process() {
  if (running()) {
    ::kill(pid_, SIGKILL);
    wait(std::chrono::seconds(5));
  }
  quit_ = true;  // (a grandchild may still hold the pipes open)
  reader_.join();
  if (out_fd_ >= 0) close(out_fd_);
  if (err_fd_ >= 0) close(err_fd_);
}

void Process::signal(int signo) {
  if (!status_) ::kill(pid_, signo);
}

bool Process::running() {
  if (status_) return false;
  int st = 0;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return false;
  }
  return true;
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    pump(std::chrono::milliseconds(10));
  }
  // What it wrote last: until the pipes close (bounded: a grandchild may hold them).
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  while (!drained_ && std::chrono::steady_clock::now() < until) pump(std::chrono::milliseconds(10));
  return status_;
}

void Process::drain() {
  char buf[65536];
  bool open[2] = {true, true};
  while (!quit_ && (open[0] || open[1])) {
    pollfd fds[2] = {{open[0] ? out_fd_ : -1, POLLIN, 0}, {open[1] ? err_fd_ : -1, POLLIN, 0}};
    if (::poll(fds, 2, 50) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (!fds[i].revents) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        open[i] = false;
      } else if (n > 0) {
        std::lock_guard lock(mutex_);
        (i == 0 ? out_ : err_).append(buf, static_cast<std::size_t>(n));
      }
    }
    more_.notify_all();
  }
  drained_ = true;
  more_.notify_all();
}

void Process::pump(std::chrono::milliseconds timeout) {
  if (timeout.count() == 0) return;
  std::unique_lock lock(mutex_);
  more_.wait_for(lock, timeout);
}

std::optional<std::string> Process::wait_for(std::string& buf, const std::string& needle,
                                             std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto find = [&]() -> std::optional<std::string> {
    std::lock_guard lock(mutex_);
    auto pos = buf.find(needle);
    if (pos == std::string::npos) return std::nullopt;
    auto start = buf.rfind('\n', pos);
    start = start == std::string::npos ? 0 : start + 1;
    auto end = buf.find('\n', pos);
    return buf.substr(start, end == std::string::npos ? std::string::npos : end - start);
  };
  for (;;) {
    if (auto line = find()) return line;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    if (!running()) {
      pump(std::chrono::milliseconds(100));  // what it wrote last may still be in the pipe
      return find();
    }
    pump(std::chrono::milliseconds(20));
  }
}

std::optional<std::string> Process::wait_for_stdout(const std::string& needle, std::chrono::milliseconds timeout) {
  return wait_for(out_, needle, timeout);
}
std::optional<std::string> Process::wait_for_stderr(const std::string& needle, std::chrono::milliseconds timeout) {
  return wait_for(err_, needle, timeout);
}
std::string Process::stdout_text() {
  std::lock_guard lock(mutex_);
  return out_;
}
std::string Process::stderr_text() {
  std::lock_guard lock(mutex_);
  return err_;
}

int wait_for_port(Process& p, std::chrono::milliseconds timeout) {
  auto line = p.wait_for_stdout("listening on http://", timeout);
  if (!line) return 0;
  static const std::regex re(R"(listening on http://.*:(\d+)/)");
  std::smatch m;
  if (!std::regex_search(*line, m, re)) return 0;
  return std::stoi(m[1]);
}

std::string feuilled_path() { return FEUILLED_PATH; }

long status_kib(int pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
  return -1;
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "feuille-test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::file(const std::string& name, const std::string& content) const {
  auto p = std::filesystem::path(path_) / name;
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p) << content;
  return p.string();
}

}  // namespace feuille::test
