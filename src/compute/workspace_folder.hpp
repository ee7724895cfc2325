#pragma once
// The user's folder <data-dir>/<id>/, mounted at /home/user in both
// containers. The first start creates Projects/Scratch/ with mrmd.md and
// 01-index.md; existing files are never overwritten. What it creates is
// owned by workspace-uid:workspace-gid (the images' user). Blocking: call it
// through offload().
#include <string>
#include <sys/types.h>

namespace feuille::compute {

// Returns the user's folder. Throws std::runtime_error naming the path on failure.
std::string ensure_workspace_folder(const std::string& data_dir, const std::string& user_id, uid_t uid, gid_t gid);

}  // namespace feuille::compute
