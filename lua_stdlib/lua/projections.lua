-- The `projections` module (ours): read-only SQL over the node's DuckDB projections.
--   projections.query(sql, params?) -> rows | nil, err     (permission projections.query)
-- Loaded with (host bridge, errors, security lib).

local B, errors, sec = ...
local type = type

local M = {}

function M.query(sql, params)
    if type(sql) ~= "string" or sql == "" then
        return nil, errors._make("INVALID", "projections.query: sql must be a non-empty string")
    end
    if params ~= nil and type(params) ~= "table" then
        return nil, errors._make("INVALID", "projections.query: params must be an array of values")
    end
    local denied = sec.check("projections.query", "projections")
    if denied then return nil, denied end
    return B.query(sql, params)
end

return M
