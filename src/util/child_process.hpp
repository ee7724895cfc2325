#pragma once
// Starting and stopping helper programs that feuilled owns (the dev-mode
// PostgreSQL and podman service, initdb): optionally as another user, in
// their own process group (a terminal's Ctrl-C reaches feuilled only, which
// stops them in order), and killed by the kernel if feuilled dies.
#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace feuille {

struct RunAs {
  uid_t uid;
  gid_t gid;
  std::string name;  // for messages
  std::string home;
};

// The unprivileged account to run PostgreSQL as when feuilled is root
// ("postgres", else "nobody").
std::optional<RunAs> unprivileged_account();

struct ChildOptions {
  std::optional<RunAs> run_as;
  std::map<std::string, std::string> env;  // added to (or replacing) the inherited environment
  std::string working_dir;
  std::string stdout_file;  // append output here (default: inherit)
  int parent_death_signal = 0;  // 0 = survive feuilled's death
};

class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const std::vector<std::string>& argv, const ChildOptions& options);
  ~ChildProcess();  // does not stop the child; call stop()
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;

  pid_t pid() const { return pid_; }
  bool running();
  std::optional<int> exit_status() const { return status_; }
  // Sends `signo`, waits up to `grace`, then SIGKILLs. Returns the status.
  int stop(int signo, std::chrono::milliseconds grace);
  std::optional<int> wait(std::chrono::milliseconds timeout);
  void release() { pid_ = -1; }  // forget the child (it keeps running)

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// Runs a program to completion; returns its exit status and combined output.
struct RunResult {
  int status = -1;
  std::string output;
};
RunResult run_command(const std::vector<std::string>& argv, const ChildOptions& options,
                      std::chrono::milliseconds timeout);

// True when `account` can traverse to and write in `dir`.
bool can_access(const RunAs& account, const std::string& dir);

// A process id from a pid file is alive (and, if given, its command line
// contains `needle`).
bool process_alive(pid_t pid, const std::string& needle = "");

// Searches PATH for a program.
std::optional<std::string> find_program(const std::string& name);

}  // namespace feuille
