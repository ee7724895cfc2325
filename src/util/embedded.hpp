#pragma once
// Files compiled into the binary by tools/embed.cpp.
#include <span>
#include <string_view>

namespace feuille::embedded {

struct File {
  std::string_view name;  // path relative to the embedded folder, '/' separated
  std::string_view data;
};

std::span<const File> static_assets();   // static/
std::span<const File> sql_migrations();  // src/db/migrations/

}  // namespace feuille::embedded
