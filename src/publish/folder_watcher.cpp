#include "publish/folder_watcher.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cerrno>
#include <cstdio>
#include <string>

namespace feuille::publish {
namespace {

constexpr std::uint32_t kMask = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE |
                                IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

}  // namespace

FolderWatcher::FolderWatcher() : fd_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) {}

FolderWatcher::~FolderWatcher() {
  if (fd_ >= 0) ::close(fd_);
}

int FolderWatcher::add(int dir_fd) {
  if (fd_ < 0) return -1;
  // The open descriptor, not a path: the watch is on the very folder that
  // was scanned, whatever was renamed since.
  char path[40];
  std::snprintf(path, sizeof path, "/proc/self/fd/%d", dir_fd);
  std::lock_guard lock(mutex_);
  int wd = ::inotify_add_watch(fd_, path, kMask);
  if (wd < 0) return -1;
  auto& w = watches_[wd];
  if (w.refs++ == 0) w.epoch = ++epoch_;  // new: changes before it count as unseen
  return wd;
}

void FolderWatcher::release(int wd) {
  std::lock_guard lock(mutex_);
  auto it = watches_.find(wd);
  if (it == watches_.end() || --it->second.refs > 0) return;
  ::inotify_rm_watch(fd_, wd);  // EINVAL when the kernel dropped it already
  watches_.erase(it);
}

std::uint64_t FolderWatcher::drain() {
  std::lock_guard lock(mutex_);
  if (fd_ < 0) return epoch_;
  alignas(inotify_event) char buf[16 * 1024];
  for (;;) {
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EAGAIN: nothing more
    for (ssize_t off = 0; off + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
      auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
      ++epoch_;
      if (ev->mask & IN_Q_OVERFLOW) overflow_epoch_ = epoch_;
      else if (auto it = watches_.find(ev->wd); it != watches_.end()) it->second.epoch = epoch_;
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
    }
    // Room left for one more event of the longest name: the queue was empty.
    if (static_cast<std::size_t>(n) + sizeof(inotify_event) + NAME_MAX + 1 <= sizeof buf) break;
  }
  return epoch_;
}

std::uint64_t FolderWatcher::last_change(const std::vector<int>& wds) const {
  std::lock_guard lock(mutex_);
  std::uint64_t last = overflow_epoch_;
  for (int wd : wds) {
    auto it = watches_.find(wd);
    last = std::max(last, it == watches_.end() ? epoch_ : it->second.epoch);
  }
  return last;
}

WatchSet::~WatchSet() {
  for (int wd : wds_) watcher_->release(wd);
}

bool WatchSet::add(int dir_fd) {
  int wd = watcher_->add(dir_fd);
  if (wd < 0) return false;
  wds_.push_back(wd);
  return true;
}

}  // namespace feuille::publish
