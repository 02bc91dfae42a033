-- The `text` module: text.regexp (RE2, Go's API), text.diff (diff-match-patch), text.splitter.
-- Objects are tables with metatables; what they wrap (a compiled pattern, a differ, a splitter)
-- lives in a weak private table keyed by the object, so Lua code cannot reach or forge it.
-- Argument mistakes in methods that return no error value raise an INVALID error (Wippy raises
-- too); functions that return `value, err` report bad input as the error.
-- Loaded with (host bridge, errors, readonly).

local B, errors, readonly = ...
local type, tostring, setmetatable, error, ipairs, format = type, tostring, setmetatable, error, ipairs,
    string.format

local function invalid(message) return errors._make("INVALID", message) end

local function string_arg(v, where)
    local t = type(v)
    if t == "string" then
        if not utf8.len(v) then error(invalid(where .. ": the string is not UTF-8 text"), 3) end
        return v
    end
    if t == "number" then return tostring(v) end
    error(invalid(format("%s: expected a string, got %s", where, t)), 3)
end

local function class(name)
    local methods = {}
    local mt = {
        __index = methods,
        __name = name,
        __metatable = name,
        __newindex = function() error(invalid(name .. " objects are read-only"), 2) end,
        __tostring = function() return name end,
    }
    return mt, methods, setmetatable({}, { __mode = "k" })
end

local function wrap(mt, handles, handle)
    local obj = setmetatable({}, mt)
    handles[obj] = handle
    return obj
end

local function handle_of(handles, self, type_name, method)
    local h = handles[self]
    if h == nil then
        error(invalid(format("%s:%s: call it as a method (obj:%s(...))", type_name, method, method)), 3)
    end
    return h
end

local function raise_err(v, err)
    if err ~= nil then error(err, 3) end
    return v
end

-- regexp --------------------------------------------------------------------------------------
local Regexp, R, regexps = class("text.Regexp")

local function re(self, method) return handle_of(regexps, self, "text.Regexp", method) end

local function method_s(name, impl)
    R[name] = function(self, s)
        local h = re(self, name)
        return raise_err(impl(h, string_arg(s, "text.Regexp:" .. name)))
    end
end
method_s("match_string", B.re_match)
method_s("find_string", B.re_find)
method_s("find_string_submatch", B.re_find_submatch)
method_s("find_string_index", B.re_find_index)
method_s("find_all_string_submatch", B.re_find_all_submatch)
method_s("find_all_string_index", B.re_find_all_index)

function R:find_all_string(s, n)
    local h = re(self, "find_all_string")
    return raise_err(B.re_find_all(h, string_arg(s, "text.Regexp:find_all_string"), n))
end
function R:replace_all_string(s, repl)
    local h = re(self, "replace_all_string")
    return raise_err(B.re_replace_all(h, string_arg(s, "text.Regexp:replace_all_string"),
        string_arg(repl, "text.Regexp:replace_all_string (replacement)")))
end
function R:split(s, n)
    local h = re(self, "split")
    return raise_err(B.re_split(h, string_arg(s, "text.Regexp:split"), n))
end
function R:num_subexp() return B.re_num_subexp(re(self, "num_subexp")) end
function R:subexp_names() return B.re_subexp_names(re(self, "subexp_names")) end
function R:string() return B.re_string(re(self, "string")) end
Regexp.__tostring = function(self) return "text.Regexp(" .. B.re_string(regexps[self]) .. ")" end

local function compile(pattern)
    if type(pattern) ~= "string" then
        return nil, invalid("text.regexp.compile: the pattern must be a string, got " .. type(pattern))
    end
    local h, err = B.re_compile(pattern)
    if h == nil then return nil, err end
    return wrap(Regexp, regexps, h), nil
end

-- diff ----------------------------------------------------------------------------------------
local Differ, D, differs = class("text.Differ")

local function differ(self, method) return handle_of(differs, self, "text.Differ", method) end

function D:compare(a, b)
    local h = differ(self, "compare")
    return B.diff_compare(h, string_arg(a, "text.Differ:compare"), string_arg(b, "text.Differ:compare"))
end
function D:summarize(diffs) return raise_err(B.diff_summarize(differ(self, "summarize"), diffs)) end
function D:pretty_text(diffs) return B.diff_pretty_text(differ(self, "pretty_text"), diffs) end
function D:pretty_html(diffs) return B.diff_pretty_html(differ(self, "pretty_html"), diffs) end
function D:patch_make(a, b)
    local h = differ(self, "patch_make")
    return B.diff_patch_make(h, string_arg(a, "text.Differ:patch_make"), string_arg(b, "text.Differ:patch_make"))
end
function D:patch_apply(patches, s)
    local h = differ(self, "patch_apply")
    local result, ok, err = B.diff_patch_apply(h, patches, string_arg(s, "text.Differ:patch_apply"))
    if err ~= nil then error(err, 2) end
    return result, ok
end

local function new_differ(options)
    local h, err = B.diff_new(options)
    if h == nil then return nil, err end
    return wrap(Differ, differs, h), nil
end

-- splitter ------------------------------------------------------------------------------------
local Splitter, SP, splitters = class("text.Splitter")

local function splitter(self, method) return handle_of(splitters, self, "text.Splitter", method) end

function SP:split_text(s)
    local h = splitter(self, "split_text")
    if type(s) ~= "string" then
        return nil, invalid("text.Splitter:split_text: the text must be a string, got " .. type(s))
    end
    return B.split_text(h, s)
end

function SP:split_batch(pages)
    local h = splitter(self, "split_batch")
    if type(pages) ~= "table" then
        return nil, invalid("text.Splitter:split_batch: pages must be a table, got " .. type(pages))
    end
    local out = {}
    for i, page in ipairs(pages) do
        if type(page) ~= "table" then
            return nil, invalid(format("text.Splitter:split_batch: page %d must be a table, got %s", i, type(page)))
        end
        local content, meta = page.content, page.metadata
        if content ~= nil and type(content) ~= "string" then
            return nil, invalid(format("text.Splitter:split_batch: page %d content must be a string, got %s", i,
                type(content)))
        end
        if meta ~= nil and type(meta) ~= "table" then
            return nil, invalid(format("text.Splitter:split_batch: page %d metadata must be a table, got %s", i,
                type(meta)))
        end
        if content ~= nil and content ~= "" then
            local chunks, err = B.split_text(h, content)
            if chunks == nil then return nil, err end
            for _, chunk in ipairs(chunks) do
                out[#out + 1] = { content = chunk, metadata = meta or {} }
            end
        end
    end
    return out, nil
end

local function make_splitter(kind)
    return function(options)
        local h, err = B.splitter_new(kind, options)
        if h == nil then return nil, err end
        return wrap(Splitter, splitters, h), nil
    end
end

return {
    regexp = readonly({ compile = compile }, "text.regexp"),
    diff = readonly({ new = new_differ }, "text.diff"),
    splitter = readonly({ recursive = make_splitter("recursive"), markdown = make_splitter("markdown") },
        "text.splitter"),
}
