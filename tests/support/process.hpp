#pragma once
// Starting the real feuilled (or any program) from a test: pipes for stdout
// and stderr (drained all the time by a thread of the Process, so a chatty
// child never blocks on a full pipe), extra environment, signals, bounded waits.
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <optional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace feuille::test {

class Process {
 public:
  Process(std::vector<std::string> argv, std::map<std::string, std::string> env = {},
          std::string working_dir = "");
  ~Process();  // SIGKILLs the process if it still runs
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int signo);
  // Exit status (or 128+signal) once exited; nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  bool running();

  // Reads stdout until a line containing `needle` appears (returns it).
  std::optional<std::string> wait_for_stdout(const std::string& needle, std::chrono::milliseconds timeout);
  std::optional<std::string> wait_for_stderr(const std::string& needle, std::chrono::milliseconds timeout);
  // Everything read so far (after draining what is available).
  std::string stdout_text();
  std::string stderr_text();

 private:
  void drain();  // the reader thread
  // Waits up to `timeout` for more output.
  void pump(std::chrono::milliseconds timeout);
  std::optional<std::string> wait_for(std::string& buf, const std::string& needle, std::chrono::milliseconds timeout);
  pid_t pid_ = -1;
  int out_fd_ = -1, err_fd_ = -1;
  std::mutex mutex_;
  std::condition_variable more_;
  std::string out_, err_;  // guarded by mutex_
  std::atomic<bool> quit_{false};
  std::atomic<bool> drained_{false};  // both pipes closed
  std::thread reader_;
  std::optional<int> status_;
};

// Starts feuilled with the given arguments and waits for its first
// "listening on http://HOST:PORT/" line; returns the port (0 on failure).
int wait_for_port(Process& p, std::chrono::milliseconds timeout = std::chrono::seconds(20));

// Path of the built daemon.
std::string feuilled_path();

// A "Key: N kB" figure of /proc/PID/status (VmRSS, VmHWM...) in KiB; -1
// when there is none (the process is gone).
long status_kib(int pid, const std::string& key);

// A fresh temporary folder, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name, const std::string& content) const;  // writes, returns path

 private:
  std::string path_;
};

}  // namespace feuille::test
