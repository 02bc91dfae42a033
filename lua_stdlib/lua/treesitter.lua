-- `treesitter`: the Lua face of _mod_treesitter.py (the API list is in that file's docstring).
--
-- Trees, nodes, cursors, parsers, queries and languages are plain tables with a protected
-- metatable. Their Python objects live only in the weak-keyed tables below, so user code never
-- reaches them, and a wrapper that is collected releases its Python object with it. A node keeps
-- its tree alive; tree:close() drops the Python tree at once and makes its nodes and cursors
-- answer nil, err. Loaded with (errors module, Python bridge); returns the module table.

local errors, host = ...
local setmetatable, type, tostring, error, pairs, ipairs = setmetatable, type, tostring, error, pairs, ipairs
local tointeger, huge = math.tointeger, math.huge
local sub, byte, gsub, format, lower = string.sub, string.byte, string.gsub, string.format, string.lower
local utf8len, utf8char = utf8.len, utf8.char
local concat, sort = table.concat, table.sort

local NODE, CURSOR, LANG, QUERY = host.node, host.cursor, host.lang, host.query
local tree_op, run_query = host.tree_op, host.run_query
local ALIASES = host.aliases

local function weak() return setmetatable({}, { __mode = "k" }) end
local NODES = weak()    -- node -> Python node
local OWNER = weak()    -- node -> its tree
local TREES = weak()    -- tree -> {py, src, lang, closed}
local CURSORS = weak()  -- cursor -> {py, tree, closed}
local PARSERS = weak()  -- parser -> {py, lang, timeout, closed}
local QUERIES = weak()  -- query -> {py, lang, closed, limits...}
local LANGS = weak()    -- language -> {py, name}

local function fail(kind, message) return errors._make(kind, message, false) end

local function class(name)
    local mt = { __name = "treesitter." .. name, __metatable = "treesitter." .. name }
    mt.__index = mt
    return mt
end

local Node, Tree, Cursor, Parser, Query, Language =
    class("Node"), class("Tree"), class("Cursor"), class("Parser"), class("Query"), class("Language")

-- arguments: wrong types are programming mistakes and raise, like Wippy's argument checks
local function int_arg(v, what, pos)
    local i = type(v) == "number" and tointeger(v) or nil
    if i == nil then
        error(format("treesitter: %s: argument #%d must be an integer, got %s", what, pos,
            type(v) == "number" and tostring(v) or type(v)), 3)
    end
    return i
end

local function str_arg(v, what, pos)
    if type(v) ~= "string" then
        error(format("treesitter: %s: argument #%d must be a string, got %s", what, pos, type(v)), 3)
    end
    if not utf8.len(v) then
        error(format("treesitter: %s: argument #%d is not UTF-8 text", what, pos), 3)
    end
    return v
end

local function point_arg(p, what, pos)
    if type(p) ~= "table" or type(p.row) ~= "number" or type(p.column) ~= "number" then
        error(format("treesitter: %s: argument #%d must be a point {row = n, column = n}", what, pos), 3)
    end
    local r, c = tointeger(p.row), tointeger(p.column)
    if r == nil or c == nil then
        error(format("treesitter: %s: argument #%d must have integer row and column", what, pos), 3)
    end
    return r, c
end

--- The state of a wrapper; raises (blaming the caller `depth` frames up) when self is not one.
local function state_of(registry, self, kind, what, depth)
    local st = registry[self]
    if st == nil then
        error(format("treesitter: %s: expected a %s (call it as obj:%s(...))", what, kind, what), depth or 3)
    end
    return st
end

local function resolve(what, lang)
    if type(lang) ~= "string" then
        return nil, fail(errors.INVALID, format("treesitter.%s: language must be a string, got %s", what, type(lang)))
    end
    local name = ALIASES[lang] or ALIASES[lower(lang)]
    if name == nil then
        local names = {}
        for alias in pairs(ALIASES) do names[#names + 1] = alias end
        sort(names)
        return nil, fail(errors.INVALID, format("treesitter.%s: unsupported language %q (supported: %s)", what, lang,
            concat(names, ", ")))
    end
    return name
end

-- Python strings must be valid UTF-8 on the way over; other byte strings travel widened (each
-- byte >= 0x80 as the code point of the same value) and are narrowed back on the Python side.
local function widen(code)
    if utf8len(code) then return code, false end
    return (gsub(code, "[\128-\255]", function(c) return utf8char(byte(c)) end)), true
end

-- nodes ---------------------------------------------------------------------------------------
local function wrap_node(tree, py)
    if py == nil then return nil end
    local n = setmetatable({}, Node)
    NODES[n] = py
    OWNER[n] = tree
    return n
end

local function wrap_nodes(tree, list)
    local out = {}
    for i = 1, #list do out[i] = wrap_node(tree, list[i]) end
    return out
end

local function node_py(self, what)
    local py = NODES[self]
    if py == nil then
        error(format("treesitter: %s: expected a Node (call it as node:%s(...))", what, what), 3)
    end
    if TREES[OWNER[self]].closed then
        return nil, fail(errors.INVALID, "treesitter: node:" .. what .. ": the node's tree is closed")
    end
    return py
end

local function point(r, c) return { row = r, column = c } end

-- methods answered by Python as they are
for _, name in ipairs({
    "kind", "grammar_name", "is_named", "is_extra", "is_missing", "is_error", "has_error", "has_changes", "id",
    "kind_id", "grammar_id", "parse_state", "next_parse_state", "start_byte", "end_byte", "byte_range",
    "child_count", "named_child_count", "descendant_count", "to_sexp",
}) do
    local op = NODE[name]
    Node[name] = function(self)
        local py, err = node_py(self, name)
        if py == nil then return nil, err end
        return op(py)
    end
end
Node.type = Node.kind

for _, name in ipairs({ "parent", "next_sibling", "prev_sibling", "next_named_sibling", "prev_named_sibling" }) do
    local op = NODE[name]
    Node[name] = function(self)
        local py, err = node_py(self, name)
        if py == nil then return nil, err end
        return wrap_node(OWNER[self], op(py))
    end
end

for _, name in ipairs({
    "child", "named_child", "first_child_for_byte", "first_named_child_for_byte", "child_by_field_id",
}) do
    local op = NODE[name]
    Node[name] = function(self, i)
        local py, err = node_py(self, name)
        if py == nil then return nil, err end
        return wrap_node(OWNER[self], op(py, int_arg(i, name, 1)))
    end
end

for _, name in ipairs({ "field_name_for_child", "field_name_for_named_child" }) do
    local op = NODE[name]
    Node[name] = function(self, i)
        local py, err = node_py(self, name)
        if py == nil then return nil, err end
        return op(py, int_arg(i, name, 1))
    end
end

function Node:child_by_field_name(field)
    local py, err = node_py(self, "child_by_field_name")
    if py == nil then return nil, err end
    return wrap_node(OWNER[self], NODE.child_by_field_name(py, str_arg(field, "child_by_field_name", 1)))
end

function Node:children()
    local py, err = node_py(self, "children")
    if py == nil then return nil, err end
    return wrap_nodes(OWNER[self], NODE.children(py))
end

function Node:named_children()
    local py, err = node_py(self, "named_children")
    if py == nil then return nil, err end
    return wrap_nodes(OWNER[self], NODE.named_children(py))
end

function Node:children_by_field_name(field)
    local py, err = node_py(self, "children_by_field_name")
    if py == nil then return nil, err end
    return wrap_nodes(OWNER[self], NODE.children_by_field_name(py, str_arg(field, "children_by_field_name", 1)))
end

function Node:children_by_field_id(id)
    local py, err = node_py(self, "children_by_field_id")
    if py == nil then return nil, err end
    return wrap_nodes(OWNER[self], NODE.children_by_field_id(py, int_arg(id, "children_by_field_id", 1)))
end

function Node:child_with_descendant(other)
    local py, err = node_py(self, "child_with_descendant")
    if py == nil then return nil, err end
    local target = NODES[other]
    if target == nil then error("treesitter: child_with_descendant: argument #1 must be a Node", 2) end
    if OWNER[other] ~= OWNER[self] then return nil end
    return wrap_node(OWNER[self], NODE.child_with_descendant(py, target))
end

for _, name in ipairs({ "descendant_for_byte_range", "named_descendant_for_byte_range" }) do
    local op = NODE[name]
    Node[name] = function(self, s, e)
        local py, err = node_py(self, name)
        if py == nil then return nil, err end
        return wrap_node(OWNER[self], op(py, int_arg(s, name, 1), int_arg(e, name, 2)))
    end
end

for _, name in ipairs({ "descendant_for_point_range", "named_descendant_for_point_range" }) do
    local op = NODE[name]
    Node[name] = function(self, p, q)
        local py, err = node_py(self, name)
        if py == nil then return nil, err end
        local r1, c1 = point_arg(p, name, 1)
        local r2, c2 = point_arg(q, name, 2)
        return wrap_node(OWNER[self], op(py, r1, c1, r2, c2))
    end
end

function Node:start_point()
    local py, err = node_py(self, "start_point")
    if py == nil then return nil, err end
    return point(NODE.start_point(py))
end

function Node:end_point()
    local py, err = node_py(self, "end_point")
    if py == nil then return nil, err end
    return point(NODE.end_point(py))
end

function Node:range()
    local py, err = node_py(self, "range")
    if py == nil then return nil, err end
    local s, e = NODE.byte_range(py)
    return { start_byte = s, end_byte = e, start_point = point(NODE.start_point(py)),
             end_point = point(NODE.end_point(py)) }
end

--- The node's source text: from `src` when given, else from the code the tree was parsed from.
function Node:text(src)
    local py, err = node_py(self, "text")
    if py == nil then return nil, err end
    if src == nil then
        src = TREES[OWNER[self]].src
    elseif type(src) ~= "string" then
        return nil, fail(errors.INVALID, "treesitter: node:text: source must be a string, got " .. type(src))
    end
    local s, e = NODE.byte_range(py)
    if e > #src then
        return nil, fail(errors.INVALID, format("treesitter: node:text: the node spans bytes %d..%d, past the "
            .. "end of the %d-byte source", s, e, #src))
    end
    return sub(src, s + 1, e)
end

function Node:equals(other)
    local a, b = NODES[self], NODES[other]
    return a ~= nil and b ~= nil and NODE.equals(a, b)
end
Node.__eq = Node.equals

local new_cursor

function Node:walk()
    local py, err = node_py(self, "walk")
    if py == nil then return nil, err end
    return new_cursor(OWNER[self], NODE.walk(py))
end

-- trees ---------------------------------------------------------------------------------------
local function new_tree(box, src, lang)
    local t = setmetatable({}, Tree)
    TREES[t] = { py = box, src = src, lang = lang, closed = false }
    return t
end

local function live_tree(self, what)
    local st = state_of(TREES, self, "Tree", what, 4)
    if st.closed then return nil, fail(errors.INVALID, "treesitter: tree:" .. what .. ": the tree is closed") end
    return st
end

local function new_language(name)
    local l = setmetatable({}, Language)
    LANGS[l] = { py = host.language(name), name = name }
    return l
end

function Tree:root_node()
    local st, err = live_tree(self, "root_node")
    if st == nil then return nil, err end
    return wrap_node(self, tree_op("root", st.py))
end

function Tree:root_node_with_offset(offset, pt)
    local st, err = live_tree(self, "root_node_with_offset")
    if st == nil then return nil, err end
    local r, c = point_arg(pt, "root_node_with_offset", 2)
    return wrap_node(self, tree_op("root_with_offset", st.py, int_arg(offset, "root_node_with_offset", 1), r, c))
end

function Tree:language()
    local st, err = live_tree(self, "language")
    if st == nil then return nil, err end
    return new_language(st.lang)
end

function Tree:copy()
    local st, err = live_tree(self, "copy")
    if st == nil then return nil, err end
    local copy = new_tree(tree_op("copy", st.py), st.src, st.lang)
    TREES[copy].edited = st.edited
    return copy
end

function Tree:walk()
    local st, err = live_tree(self, "walk")
    if st == nil then return nil, err end
    return new_cursor(self, tree_op("walk", st.py))
end

local EDIT_FIELDS = { "start_byte", "old_end_byte", "new_end_byte", "start_row", "start_column", "old_end_row",
                      "old_end_column", "new_end_row", "new_end_column" }

--- Tell the tree about a change to its source: {start_byte, old_end_byte, new_end_byte, start_row,
--- start_column, old_end_row, old_end_column, new_end_row, new_end_column} (points may also be given
--- as start_point / old_end_point / new_end_point). Then parse the new code with this tree.
function Tree:edit(edit)
    local st, err = live_tree(self, "edit")
    if st == nil then return false, err end
    if type(edit) ~= "table" then
        return false, fail(errors.INVALID, "treesitter: tree:edit: expected an edit table, got " .. type(edit))
    end
    local v = {}
    for i, key in ipairs(EDIT_FIELDS) do
        local value = edit[key]
        if value == nil then
            local pt = edit[gsub(key, "_row$", "_point")] or edit[gsub(key, "_column$", "_point")]
            if type(pt) == "table" then value = key:find("_row$") and pt.row or pt.column end
        end
        value = type(value) == "number" and tointeger(value) or nil
        if value == nil or value < 0 then
            return false, fail(errors.INVALID, "treesitter: tree:edit: " .. key .. " must be a non-negative integer")
        end
        v[i] = value
    end
    if v[2] < v[1] or v[3] < v[1] then
        return false, fail(errors.INVALID, "treesitter: tree:edit: old_end_byte and new_end_byte must not come before "
            .. "start_byte")
    end
    if v[6] < v[4] or (v[6] == v[4] and v[7] < v[5]) or v[8] < v[4] or (v[8] == v[4] and v[9] < v[5]) then
        return false, fail(errors.INVALID, "treesitter: tree:edit: the end points must not come before the start point")
    end
    for i = 1, #v do
        if v[i] > 0xFFFFFFFF then
            return false, fail(errors.INVALID, "treesitter: tree:edit: " .. EDIT_FIELDS[i] .. " is too large")
        end
    end
    tree_op("edit", st.py, v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9])
    st.edited = true
    return true
end

local function ranges(flat)
    local out = {}
    for i = 1, #flat, 6 do
        out[#out + 1] = { start_byte = flat[i], end_byte = flat[i + 1], start_point = point(flat[i + 2], flat[i + 3]),
                          end_point = point(flat[i + 4], flat[i + 5]) }
    end
    return out
end

function Tree:changed_ranges(other)
    local st, err = live_tree(self, "changed_ranges")
    if st == nil then return nil, err end
    local ost = TREES[other]
    if ost == nil then error("treesitter: tree:changed_ranges: argument #1 must be a Tree", 2) end
    if ost.closed then return nil, fail(errors.INVALID, "treesitter: tree:changed_ranges: the other tree is closed") end
    return ranges(tree_op("changed_ranges", st.py, ost.py))
end

function Tree:included_ranges()
    local st, err = live_tree(self, "included_ranges")
    if st == nil then return nil, err end
    return ranges(tree_op("included_ranges", st.py))
end

function Tree:dot_graph()
    local st, err = live_tree(self, "dot_graph")
    if st == nil then return nil, err end
    return tree_op("dot_graph", st.py)
end

function Tree:close()
    local st = state_of(TREES, self, "Tree", "close")
    if not st.closed then
        st.closed = true
        st.src = nil
        tree_op("close", st.py)
    end
    return true
end

-- cursors -------------------------------------------------------------------------------------
new_cursor = function(tree, py)
    local c = setmetatable({}, Cursor)
    CURSORS[c] = { py = py, tree = tree, closed = false }
    return c
end

local function live_cursor(self, what)
    local st = state_of(CURSORS, self, "Cursor", what, 4)
    if st.closed then return nil, fail(errors.INVALID, "treesitter: cursor:" .. what .. ": the cursor is closed") end
    if TREES[st.tree].closed then
        return nil, fail(errors.INVALID, "treesitter: cursor:" .. what .. ": the cursor's tree is closed")
    end
    return st
end

local CURSOR_PLAIN = {
    current_depth = "depth", current_field_name = "field_name", current_field_id = "field_id",
    current_descendant_index = "descendant_index", goto_parent = "goto_parent",
    goto_first_child = "goto_first_child", goto_last_child = "goto_last_child",
    goto_next_sibling = "goto_next_sibling", goto_previous_sibling = "goto_previous_sibling",
}
for name, opname in pairs(CURSOR_PLAIN) do
    local op = CURSOR[opname]
    Cursor[name] = function(self)
        local st, err = live_cursor(self, name)
        if st == nil then return nil, err end
        return op(st.py)
    end
end

for _, name in ipairs({ "goto_descendant", "goto_first_child_for_byte" }) do
    local op = CURSOR[name]
    Cursor[name] = function(self, i)
        local st, err = live_cursor(self, name)
        if st == nil then return nil, err end
        return op(st.py, int_arg(i, name, 1))
    end
end

function Cursor:goto_first_child_for_point(p)
    local st, err = live_cursor(self, "goto_first_child_for_point")
    if st == nil then return nil, err end
    return CURSOR.goto_first_child_for_point(st.py, point_arg(p, "goto_first_child_for_point", 1))
end

function Cursor:current_node()
    local st, err = live_cursor(self, "current_node")
    if st == nil then return nil, err end
    return wrap_node(st.tree, CURSOR.node(st.py))
end

function Cursor:reset(node)
    local st, err = live_cursor(self, "reset")
    if st == nil then return nil, err end
    local py = NODES[node]
    if py == nil then error("treesitter: cursor:reset: argument #1 must be a Node", 2) end
    -- py-tree-sitter keeps a cursor tied to the tree it was made on; moving it to another tree
    -- would leave it pointing into memory that tree does not own
    if OWNER[node] ~= st.tree then
        return nil, fail(errors.INVALID, "treesitter: cursor:reset: the node is from another tree (use node:walk())")
    end
    CURSOR.reset(st.py, py)
end

function Cursor:reset_to(other)
    local st, err = live_cursor(self, "reset_to")
    if st == nil then return nil, err end
    if CURSORS[other] == nil then error("treesitter: cursor:reset_to: argument #1 must be a Cursor", 2) end
    local ost, oerr = live_cursor(other, "reset_to")
    if ost == nil then return nil, oerr end
    if ost.tree ~= st.tree then
        return nil, fail(errors.INVALID, "treesitter: cursor:reset_to: the other cursor walks another tree")
    end
    CURSOR.reset_to(st.py, ost.py)
end

function Cursor:copy()
    local st, err = live_cursor(self, "copy")
    if st == nil then return nil, err end
    return new_cursor(st.tree, CURSOR.copy(st.py))
end

function Cursor:close()
    local st = state_of(CURSORS, self, "Cursor", "close")
    st.closed = true
    st.py = nil
end

-- languages -----------------------------------------------------------------------------------
local function lang_st(self, what) return state_of(LANGS, self, "Language", what, 4) end

function Language:name() return lang_st(self, "name").name end

for _, name in ipairs({ "version", "node_kind_count", "parse_state_count", "field_count" }) do
    local op = LANG[name]
    Language[name] = function(self) return op(lang_st(self, name).py) end
end

for _, name in ipairs({ "node_kind_for_id", "node_kind_is_named", "node_kind_is_visible", "field_name_for_id" }) do
    local op = LANG[name]
    Language[name] = function(self, id) return op(lang_st(self, name).py, int_arg(id, name, 1)) end
end

function Language:id_for_node_kind(kind, named)
    local st = lang_st(self, "id_for_node_kind")
    return LANG.id_for_node_kind(st.py, str_arg(kind, "id_for_node_kind", 1), named ~= false) or 0
end

function Language:field_id_for_name(name)
    local st = lang_st(self, "field_id_for_name")
    return LANG.field_id_for_name(st.py, str_arg(name, "field_id_for_name", 1)) or 0
end

-- parsers -------------------------------------------------------------------------------------
local function live_parser(self, what)
    local st = state_of(PARSERS, self, "Parser", what, 4)
    if st.closed then return nil, fail(errors.INVALID, "treesitter: parser:" .. what .. ": the parser is closed") end
    return st
end

function Parser:set_language(lang)
    local st, err = live_parser(self, "set_language")
    if st == nil then return false, err end
    local name, rerr = resolve("parser:set_language", lang)
    if name == nil then return false, rerr end
    host.set_parser_language(st.py, name)
    st.lang = name
    return true
end

function Parser:get_language()
    local st, err = live_parser(self, "get_language")
    if st == nil then return nil, err end
    if st.lang == nil then return nil, fail(errors.INVALID, "treesitter: parser:get_language: no language is set") end
    return st.lang
end

local function parse(what, py, lang, code, old, timeout)
    if type(code) ~= "string" then
        return nil, fail(errors.INVALID, format("treesitter.%s: code must be a string, got %s", what, type(code)))
    end
    local old_py
    if old ~= nil then
        local ost = TREES[old]
        if ost == nil then
            return nil, fail(errors.INVALID, "treesitter." .. what .. ": the old tree must be a Tree, got " .. type(old))
        end
        if ost.closed then return nil, fail(errors.INVALID, "treesitter." .. what .. ": the old tree is closed") end
        if ost.lang ~= lang then
            return nil, fail(errors.INVALID, format("treesitter.%s: the old tree is %s code, the parser parses %s",
                what, ost.lang, lang))
        end
        old_py = ost.py
    end
    local wide, latin1 = widen(code)
    local box, err = host.parse(py, lang, wide, latin1, old_py, timeout)
    if box == nil then return nil, err end
    return new_tree(box, code, lang)
end

function Parser:parse(code, old_tree)
    local st, err = live_parser(self, "parse")
    if st == nil then return nil, err end
    if st.lang == nil then
        return nil, fail(errors.INVALID, "treesitter: parser:parse: no language is set (call parser:set_language)")
    end
    return parse("parser:parse", st.py, st.lang, code, old_tree, st.timeout)
end

--- Parse timeout: nanoseconds or a duration string ("1s"); 0 for none.
function Parser:set_timeout(d)
    local st, err = live_parser(self, "set_timeout")
    if st == nil then return false, err end
    local ns
    if type(d) == "number" then
        ns = tointeger(d) or (d < huge and d > -huge and tointeger(d // 1)) or nil
    elseif type(d) == "string" and not utf8.len(d) then
        return false, fail(errors.INVALID, "treesitter: parser:set_timeout: the duration is not UTF-8 text")
    elseif type(d) == "string" then
        local perr
        ns, perr = host.parse_duration(d)
        if ns == nil then return false, fail(errors.INVALID, "treesitter: parser:set_timeout: " .. perr) end
    end
    if ns == nil or ns < 0 then
        return false, fail(errors.INVALID, "treesitter: parser:set_timeout: expected a non-negative duration "
            .. "(nanoseconds or a string like \"1s\"), got " .. tostring(d))
    end
    st.timeout = ns
    return true
end

--- Parse only parts of the code: {{start_byte, end_byte, start_point = {row, column}, end_point}, ...}
--- (start_row/start_column/end_row/end_column are accepted too); an empty list means all of it.
function Parser:set_ranges(list)
    local st, err = live_parser(self, "set_ranges")
    if st == nil then return false, err end
    if type(list) ~= "table" then
        return false, fail(errors.INVALID, "treesitter: parser:set_ranges: expected a list of ranges, got " .. type(list))
    end
    local flat = {}
    for i, r in ipairs(list) do
        if type(r) ~= "table" then
            return false, fail(errors.INVALID, format("treesitter: parser:set_ranges: range %d is a %s", i, type(r)))
        end
        local sp, ep = r.start_point or {}, r.end_point or {}
        local values = { r.start_byte, r.end_byte, sp.row or r.start_row, sp.column or r.start_column or r.start_col,
                         ep.row or r.end_row, ep.column or r.end_column or r.end_col }
        for k = 1, 6 do
            local v = type(values[k]) == "number" and tointeger(values[k]) or nil
            if v == nil or v < 0 or v > 0xFFFFFFFF then
                return false, fail(errors.INVALID, format("treesitter: parser:set_ranges: range %d needs non-negative "
                    .. "integer start_byte, end_byte, start_point and end_point", i))
            end
            flat[#flat + 1] = v
        end
    end
    return host.set_ranges(st.py, flat)
end

function Parser:reset()
    local st, err = live_parser(self, "reset")
    if st == nil then return nil, err end
    host.reset_parser(st.py)
end

function Parser:close()
    local st = state_of(PARSERS, self, "Parser", "close")
    st.closed = true
    st.py = nil
end

-- queries -------------------------------------------------------------------------------------
local function live_query(self, what)
    local st = state_of(QUERIES, self, "Query", what, 4)
    if st.closed then return nil, fail(errors.INVALID, "treesitter: query:" .. what .. ": the query is closed") end
    return st
end

local function capture(flat, i, tree, source)
    local s, e = flat[i + 2], flat[i + 3]
    return { name = flat[i], index = flat[i + 1], node = wrap_node(tree, flat[i + 4]),
             text = e <= #source and sub(source, s + 1, e) or nil }
end

local function run(self, what, node, src, captures_mode)
    local st, err = live_query(self, what)
    if st == nil then return nil, err end
    local py = NODES[node]
    if py == nil then
        return nil, fail(errors.INVALID, "treesitter: query:" .. what .. ": argument #1 must be a Node, got " .. type(node))
    end
    local tree = OWNER[node]
    local tst = TREES[tree]
    if tst.closed then return nil, fail(errors.INVALID, "treesitter: query:" .. what .. ": the node's tree is closed") end
    if tst.lang ~= st.lang then
        return nil, fail(errors.INVALID, format("treesitter: query:%s: the query is for %s, the node is from %s code",
            what, st.lang, tst.lang))
    end
    if src ~= nil and type(src) ~= "string" then
        return nil, fail(errors.INVALID, "treesitter: query:" .. what .. ": source must be a string, got " .. type(src))
    end
    if tst.edited and st.text_predicates then
        return nil, fail(errors.INVALID, "treesitter: query:" .. what .. ": the tree was edited after parsing; parse "
            .. "the new code (parser:parse(code, tree)) before running a query with text predicates")
    end
    local br, pr = st.byte_range, st.point_range
    local flat, exceeded = run_query(st.py, py, captures_mode, st.match_limit, st.max_start_depth,
        br and br[1] or -1, br and br[2] or -1, pr and pr[1] or -1, pr and pr[2] or -1, pr and pr[3] or -1,
        pr and pr[4] or -1)
    if flat == nil then return nil, exceeded end
    st.exceeded = exceeded
    return flat, tree, src or tst.src
end

--- Every capture of every match, in document order: {{name, text, index, node}, ...}.
function Query:captures(node, src)
    local flat, tree, source = run(self, "captures", node, src, true)
    if flat == nil then return nil, tree end
    local out = {}
    for i = 1, #flat, 5 do out[#out + 1] = capture(flat, i, tree, source) end
    return out
end

--- Matches with their captures: {{id, pattern, captures = {{name, text, index, node}, ...}}, ...}.
function Query:matches(node, src)
    local flat, tree, source = run(self, "matches", node, src, false)
    if flat == nil then return nil, tree end
    local out, i = {}, 1
    while i <= #flat do
        local pattern, caps, j = flat[i], {}, i + 2
        for _ = 1, flat[i + 1] do
            caps[#caps + 1] = capture(flat, j, tree, source)
            j = j + 5
        end
        out[#out + 1] = { id = #out, pattern = pattern, captures = caps }
        i = j
    end
    return out
end

for _, name in ipairs({ "pattern_count", "capture_count", "string_count" }) do
    local op = QUERY[name]
    Query[name] = function(self)
        local st, err = live_query(self, name)
        if st == nil then return nil, err end
        return op(st.py)
    end
end

local QUERY_BY_INDEX = {
    capture_name_for_id = "capture_name", start_byte_for_pattern = "start_byte_for_pattern",
    end_byte_for_pattern = "end_byte_for_pattern", is_pattern_rooted = "is_pattern_rooted",
    is_pattern_non_local = "is_pattern_non_local", is_pattern_guaranteed_at_step = "is_pattern_guaranteed_at_step",
    disable_pattern = "disable_pattern",
}
for name, opname in pairs(QUERY_BY_INDEX) do
    local op = QUERY[opname]
    Query[name] = function(self, i)
        local st, err = live_query(self, name)
        if st == nil then return nil, err end
        return op(st.py, int_arg(i, name, 1))
    end
end

function Query:capture_quantifier(pattern, capture_id)
    local st, err = live_query(self, "capture_quantifier")
    if st == nil then return nil, err end
    return QUERY.capture_quantifier(st.py, int_arg(pattern, "capture_quantifier", 1),
        int_arg(capture_id, "capture_quantifier", 2))
end

local function capture_name(name, what)
    name = str_arg(name, what, 1)
    return byte(name) == 64 and sub(name, 2) or name -- "@name" and "name" both work
end

function Query:capture_index_for_name(name)
    local st, err = live_query(self, "capture_index_for_name")
    if st == nil then return nil, err end
    name = capture_name(name, "capture_index_for_name")
    for i = 0, QUERY.capture_count(st.py) - 1 do
        if QUERY.capture_name(st.py, i) == name then return i end
    end
    return nil
end

function Query:disable_capture(name)
    local st, err = live_query(self, "disable_capture")
    if st == nil then return nil, err end
    QUERY.disable_capture(st.py, capture_name(name, "disable_capture"))
end

function Query:set_byte_range(s, e)
    local st, err = live_query(self, "set_byte_range")
    if st == nil then return false, err end
    s, e = int_arg(s, "set_byte_range", 1), int_arg(e, "set_byte_range", 2)
    if s < 0 or e < s or e > 0xFFFFFFFF then
        return false, fail(errors.INVALID, format("treesitter: query:set_byte_range: invalid range %d..%d", s, e))
    end
    st.byte_range = { s, e }
    return true
end

function Query:set_point_range(p, q)
    local st, err = live_query(self, "set_point_range")
    if st == nil then return false, err end
    local r1, c1 = point_arg(p, "set_point_range", 1)
    local r2, c2 = point_arg(q, "set_point_range", 2)
    if r1 < 0 or c1 < 0 or r2 < r1 or (r2 == r1 and c2 < c1) or r2 > 0xFFFFFFFF or c2 > 0xFFFFFFFF then
        return false, fail(errors.INVALID, "treesitter: query:set_point_range: the end comes before the start")
    end
    st.point_range = { r1, c1, r2, c2 }
    return true
end

function Query:set_match_limit(n)
    local st, err = live_query(self, "set_match_limit")
    if st == nil then return false, err end
    n = int_arg(n, "set_match_limit", 1)
    if n < 0 or n > 0xFFFFFFFF then
        return false, fail(errors.INVALID, "treesitter: query:set_match_limit: the limit must be 0..2^32-1")
    end
    st.match_limit = n
    return true
end

function Query:get_match_limit()
    local st, err = live_query(self, "get_match_limit")
    if st == nil then return nil, err end
    return st.match_limit
end

function Query:did_exceed_match_limit()
    local st, err = live_query(self, "did_exceed_match_limit")
    if st == nil then return nil, err end
    return st.exceeded
end

function Query:set_max_start_depth(n)
    local st, err = live_query(self, "set_max_start_depth")
    if st == nil then return false, err end
    n = int_arg(n, "set_max_start_depth", 1)
    if n < 0 then return false, fail(errors.INVALID, "treesitter: query:set_max_start_depth: depth must be >= 0") end
    st.max_start_depth = n
    return true
end

--- Query timeouts need an interruptible query cursor, which py-tree-sitter does not offer safely.
function Query:set_timeout(d)
    local st, err = live_query(self, "set_timeout")
    if st == nil then return false, err end
    if d == 0 or d == "0" or d == "0s" then return true end
    return false, fail(errors.UNAVAILABLE, "treesitter: query:set_timeout is not implemented in this runtime")
end

function Query:close()
    local st = state_of(QUERIES, self, "Query", "close")
    st.closed = true
    st.py = nil
end

-- the module ----------------------------------------------------------------------------------
local M = {}

--- Every language name and alias this runtime parses, as a set: {go = true, golang = true, ...}.
function M.supported_languages()
    local out = {}
    for alias in pairs(ALIASES) do out[alias] = true end
    return out
end

--- Parse code with a fresh parse state: Tree, or nil and an error.
function M.parse(lang, code)
    local name, err = resolve("parse", lang)
    if name == nil then return nil, err end
    return parse("parse", nil, name, code, nil, 0)
end

function M.parser()
    local p = setmetatable({}, Parser)
    PARSERS[p] = { py = host.new_parser(), lang = nil, timeout = 0, closed = false }
    return p
end

function M.language(lang)
    local name, err = resolve("language", lang)
    if name == nil then return nil, err end
    return new_language(name)
end

--- Compile a query (S-expression patterns with captures and predicates) for a language.
function M.query(lang, pattern)
    local name, err = resolve("query", lang)
    if name == nil then return nil, err end
    if type(pattern) ~= "string" then
        return nil, fail(errors.INVALID, "treesitter.query: pattern must be a string, got " .. type(pattern))
    end
    if not utf8len(pattern) then
        return nil, fail(errors.INVALID, "treesitter.query: pattern is not valid UTF-8")
    end
    local py, qerr, text_predicates = host.new_query(name, pattern)
    if py == nil then return nil, qerr end
    local q = setmetatable({}, Query)
    QUERIES[q] = { py = py, lang = name, closed = false, match_limit = 0, max_start_depth = -1, exceeded = false,
                   text_predicates = text_predicates }
    return q
end

return M
