#pragma once
// A least-recently-used map bounded by a cost budget (bytes, or 1 per
// entry). Not thread-safe: the publish module uses it on the loop only.
#include <cstddef>
#include <list>
#include <string>
#include <unordered_map>
#include <utility>

namespace feuille::publish {

template <class V>
class Lru {
 public:
  explicit Lru(std::size_t budget) : budget_(budget) {}

  // The value, marked most recently used; nullptr when absent.
  V* find(const std::string& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    items_.splice(items_.begin(), items_, it->second);
    return &it->second->value;
  }

  // Inserts or replaces; evicts the least recently used entries until the
  // total cost fits. An entry costing more than the budget is not kept.
  void put(const std::string& key, V value, std::size_t cost) {
    erase(key);
    if (cost > budget_) return;
    items_.push_front(Item{key, std::move(value), cost});
    index_[key] = items_.begin();
    used_ += cost;
    while (used_ > budget_) {
      auto& last = items_.back();
      used_ -= last.cost;
      index_.erase(last.key);
      items_.pop_back();
    }
  }

  void erase(const std::string& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return;
    used_ -= it->second->cost;
    items_.erase(it->second);
    index_.erase(it);
  }

  std::size_t size() const { return items_.size(); }
  std::size_t used() const { return used_; }

 private:
  struct Item {
    std::string key;
    V value;
    std::size_t cost;
  };
  std::size_t budget_;
  std::size_t used_ = 0;
  std::list<Item> items_;
  std::unordered_map<std::string, typename std::list<Item>::iterator> index_;
};

}  // namespace feuille::publish
