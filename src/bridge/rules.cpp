// SPDX-License-Identifier: Apache-2.0
#include "bridge/rules.hpp"

#include "mqtt/topic.hpp"

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

namespace {

// Matches `text` against the template from position `t` on, filling captures[N-1] for {N}
// (one level, no '/') and `tail` for {#} (the rest). Backtracks over placeholders.
bool match_template(std::string_view tmpl, size_t t, std::string_view text, size_t x,
                    std::vector<std::optional<std::string>> &captures,
                    std::optional<std::string> &tail) {
    if (t == tmpl.size()) {
        return x == text.size();
    }
    if (tmpl[t] != '{') {
        return x < text.size() && text[x] == tmpl[t] &&
               match_template(tmpl, t + 1, text, x + 1, captures, tail);
    }
    const size_t close = tmpl.find('}', t);
    const std::string_view name = tmpl.substr(t + 1, close - t - 1);
    if (name == "#") {
        // Only at the end of a template: the rest of the topic.
        if (close + 1 != tmpl.size()) {
            return false;
        }
        tail = std::string(text.substr(x));
        return true;
    }
    const size_t n = std::stoul(std::string(name));
    const size_t slash = text.find('/', x);
    const size_t level_end = slash == std::string_view::npos ? text.size() : slash;
    for (size_t end = x; end <= level_end; ++end) {
        std::string value(text.substr(x, end - x));
        if (captures[n - 1] && *captures[n - 1] != value) {
            continue;
        }
        const bool had = captures[n - 1].has_value();
        captures[n - 1] = value;
        if (match_template(tmpl, close + 1, text, end, captures, tail)) {
            return true;
        }
        if (!had) {
            captures[n - 1].reset();
        }
    }
    return false;
}

} // namespace

std::optional<std::string> unmap_topic(std::string_view filter, std::string_view topic_template,
                                       std::string_view mapped) {
    if (topic_template.empty()) {
        if (!mqtt::topic_matches(filter, mapped)) {
            return std::nullopt;
        }
        return std::string(mapped);
    }
    const std::vector<std::string_view> levels = split_levels(filter);
    size_t plus = 0;
    for (std::string_view l : levels) {
        plus += l == "+" ? 1 : 0;
    }
    std::vector<std::optional<std::string>> captures(plus);
    std::optional<std::string> tail;
    if (!match_template(topic_template, 0, mapped, 0, captures, tail)) {
        return std::nullopt;
    }
    std::string out;
    size_t next_plus = 0;
    for (size_t i = 0; i < levels.size(); ++i) {
        if (levels[i] == "#") {
            if (tail && !tail->empty()) {
                if (!out.empty() || i > 0) {
                    out += '/';
                }
                out += *tail;
            }
            break;
        }
        if (i > 0) {
            out += '/';
        }
        if (levels[i] == "+") {
            const std::optional<std::string> &c = captures[next_plus++];
            if (!c || c->empty()) {
                return std::nullopt; // the template does not say what this level is
            }
            out += *c;
        } else {
            out += levels[i];
        }
    }
    if (!mqtt::topic_matches(filter, out)) {
        return std::nullopt;
    }
    return out;
}

} // namespace ferrymq::bridge
