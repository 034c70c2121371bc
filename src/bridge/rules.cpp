// SPDX-License-Identifier: Apache-2.0
#include "bridge/rules.hpp"

#include <vector>

namespace ferrymq::bridge {

namespace {

std::vector<std::string_view> split_levels(std::string_view s) {
    std::vector<std::string_view> levels;
    size_t start = 0;
    for (;;) {
        const size_t slash = s.find('/', start);
        levels.push_back(s.substr(start, slash == std::string_view::npos ? s.npos : slash - start));
        if (slash == std::string_view::npos) {
            return levels;
        }
        start = slash + 1;
    }
}

} // namespace

std::optional<std::string> check_template(std::string_view filter,
                                          std::string_view topic_template) {
    size_t plus = 0;
    bool hash = false;
    for (std::string_view level : split_levels(filter)) {
        plus += level == "+" ? 1 : 0;
        hash = hash || level == "#";
    }
    if (topic_template.find_first_of("+#") != std::string_view::npos) {
        // A '#' inside "{#}" is a placeholder, not a wildcard.
        for (size_t i = 0; i < topic_template.size(); ++i) {
            const char ch = topic_template[i];
            if (ch == '+' ||
                (ch == '#' && !(i > 0 && topic_template[i - 1] == '{' &&
                                i + 1 < topic_template.size() && topic_template[i + 1] == '}'))) {
                return "the topic template '" + std::string(topic_template) +
                       "' contains a wildcard";
            }
        }
    }
    for (size_t open = topic_template.find('{'); open != std::string_view::npos;
         open = topic_template.find('{', open + 1)) {
        const size_t close = topic_template.find('}', open);
        if (close == std::string_view::npos) {
            return "unclosed '{' in the topic template '" + std::string(topic_template) + "'";
        }
        const std::string_view name = topic_template.substr(open + 1, close - open - 1);
        if (name == "#") {
            if (!hash) {
                return "{#} in '" + std::string(topic_template) + "' but the filter '" +
                       std::string(filter) + "' has no '#'";
            }
            continue;
        }
        size_t n = 0;
        bool digits = !name.empty() && name.size() <= 3;
        for (char ch : name) {
            digits = digits && ch >= '0' && ch <= '9';
            n = n * 10 + size_t(ch - '0');
        }
        if (!digits || n == 0) {
            return "unknown placeholder {" + std::string(name) + "} in '" +
                   std::string(topic_template) + "'; expected {1}, {2}, ... or {#}";
        }
        if (n > plus) {
            return "{" + std::string(name) + "} in '" + std::string(topic_template) +
                   "' but the filter '" + std::string(filter) + "' has only " +
                   std::to_string(plus) + " '+' level(s)";
        }
    }
    return std::nullopt;
}

std::string map_topic(std::string_view filter, std::string_view topic_template,
                      std::string_view topic) {
    if (topic_template.empty()) {
        return std::string(topic);
    }
    const std::vector<std::string_view> f = split_levels(filter);
    const std::vector<std::string_view> t = split_levels(topic);
    std::vector<std::string_view> captures;
    std::string_view tail;
    for (size_t i = 0; i < f.size(); ++i) {
        if (f[i] == "#") {
            if (i < t.size()) {
                // Everything from this level on, slashes included.
                size_t offset = 0;
                for (size_t j = 0; j < i; ++j) {
                    offset += t[j].size() + 1;
                }
                tail = topic.substr(offset);
            }
            break;
        }
        if (f[i] == "+" && i < t.size()) {
            captures.push_back(t[i]);
        }
    }
    std::string out;
    out.reserve(topic_template.size() + topic.size());
    for (size_t i = 0; i < topic_template.size(); ++i) {
        if (topic_template[i] != '{') {
            out += topic_template[i];
            continue;
        }
        const size_t close = topic_template.find('}', i);
        const std::string_view name = topic_template.substr(i + 1, close - i - 1);
        if (name == "#") {
            if (tail.empty() && !out.empty() && out.back() == '/') {
                out.pop_back();
            }
            out += tail;
        } else {
            const size_t n = std::stoul(std::string(name));
            if (n >= 1 && n <= captures.size()) {
                out += captures[n - 1];
            }
        }
        i = close;
    }
    return out;
}

} // namespace ferrymq::bridge
