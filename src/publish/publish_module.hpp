#pragma once
// The publish renderer (SPEC.md section 5): /@handle, /@handle/project[/page]
// and /@handle/project/_assets/file, served from the user's files without a
// workspace running.
#include <memory>

#include "app/module.hpp"

namespace feuille::publish {

std::unique_ptr<app::Module> make_module(app::ModuleContext& ctx);

}  // namespace feuille::publish
