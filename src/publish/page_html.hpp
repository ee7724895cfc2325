#pragma once
// The HTML documents of the publish routes: a project page (the article,
// the nav of all pages with the current one marked, prev/next, the project
// title) and a user's list of public projects. Built on http::page().
#include <string>
#include <string_view>
#include <vector>

#include "publish/markdown.hpp"
#include "publish/project.hpp"

namespace feuille::publish {

// "/@handle/project" (the project folder percent-encoded).
std::string project_url(std::string_view handle, std::string_view folder);
// A page's URL below its project's URL.
std::string page_url(std::string_view project_url, const Page& page);

// Makes the relative links of `page` absolute: links to other .md files of
// the project (or folders) go to their page URL, links into the project's
// _assets/ folder to the asset URL, anything else relative is resolved
// against the page's place in URL space. The rewriter refers to `project`.
LinkRewriter link_rewriter(const Project& project, std::string_view project_url, const Page& page);

// The whole document of page `current` (-1: the project has no pages).
std::string project_page(std::string_view handle, const Project& project, int current,
                         std::string_view article_html);

// The user's page: name, handle, public projects with their descriptions.
std::string listing_page(std::string_view handle, std::string_view name, const std::vector<ProjectSummary>& projects);

}  // namespace feuille::publish
