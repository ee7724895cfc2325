#pragma once
// inotify watches on the folders of cached projects, so that a cached page
// can be known fresh without a stat of every folder on every request (each
// system call is expensive, notably in VMs). The stamps stay the cache keys
// (SPEC.md section 5): an event only says "check the stamps again".
//
// The kernel queues an event before the system call that changed a folder
// returns, so reading the queue (drain) at the start of a request sees every
// change made before that request was sent. Thread-safe: scans add watches
// on the thread pool, the loop drains.
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace feuille::publish {

class FolderWatcher {
 public:
  FolderWatcher();  // without inotify (or out of instances), enabled() is false
  ~FolderWatcher();
  FolderWatcher(const FolderWatcher&) = delete;
  FolderWatcher& operator=(const FolderWatcher&) = delete;

  bool enabled() const { return fd_ >= 0; }

  // Watches the directory open as `dir_fd` (its entries being created,
  // deleted, renamed, written, touched; itself moved or deleted). Returns a
  // watch id, -1 when it cannot (limits); each id is given back with release().
  int add(int dir_fd);
  void release(int wd);

  // Reads every queued event (never blocks) and returns the current epoch:
  // a counter that grows with each change seen.
  std::uint64_t drain();

  // The epoch of the last change seen under any of these watches (or of a
  // lost event queue, which could hide any change).
  std::uint64_t last_change(const std::vector<int>& wds) const;

 private:
  struct Watch {
    int refs = 0;
    std::uint64_t epoch = 0;
  };
  int fd_ = -1;
  mutable std::mutex mutex_;
  std::unordered_map<int, Watch> watches_;
  std::uint64_t epoch_ = 1;
  std::uint64_t overflow_epoch_ = 0;
};

// The watches of one scanned project, given back when the last holder goes.
class WatchSet {
 public:
  WatchSet(std::shared_ptr<FolderWatcher> watcher) : watcher_(std::move(watcher)) {}
  ~WatchSet();
  WatchSet(const WatchSet&) = delete;
  WatchSet& operator=(const WatchSet&) = delete;

  // Adds a watch on the open directory; false when it could not (then the
  // set is incomplete and its owner must not rely on it).
  bool add(int dir_fd);
  const std::vector<int>& ids() const { return wds_; }
  FolderWatcher& watcher() const { return *watcher_; }

 private:
  std::shared_ptr<FolderWatcher> watcher_;
  std::vector<int> wds_;
};

}  // namespace feuille::publish
