#include "compute/port_allocator.hpp"

namespace feuille::compute {

PortAllocator::PortAllocator() : random_(std::random_device{}()) {}

std::optional<std::uint16_t> PortAllocator::allocate(Range range) {
  const std::uint32_t size = static_cast<std::uint32_t>(range.last - range.first) + 1;
  auto [it, fresh] = cursor_.try_emplace(range.first, 0);
  if (fresh) it->second = static_cast<std::uint16_t>(std::uniform_int_distribution<std::uint32_t>(0, size - 1)(random_));
  for (std::uint32_t i = 0; i < size; ++i) {
    auto port = static_cast<std::uint16_t>(range.first + (it->second + i) % size);
    if (taken(port)) continue;
    it->second = static_cast<std::uint16_t>((it->second + i + 1) % size);
    taken_.insert(port);
    return port;
  }
  return std::nullopt;
}

}  // namespace feuille::compute
