#include "auth/authenticator.hpp"

namespace feuille::auth {

const char* to_string(Role r) {
  switch (r) {
    case Role::viewer: return "viewer";
    case Role::editor: return "editor";
    case Role::owner: return "owner";
  }
  return "viewer";
}

}  // namespace feuille::auth
