-- Options of the tiny-copilot Neovim plugin: defaults, merging and validation.
local M = {}

-- Every option with its default. `setup()` rejects keys that are not listed here, so a typo in
-- a user's config is an error instead of a silently ignored option.
M.defaults = {
  -- Command that starts the language server over stdio; add `--checkpoint DIR` to pick a model.
  cmd = { "tiny-copilot-lsp" },
  -- Filetypes to attach to; "*" means every buffer of a file (buftype "").
  filetypes = { "*" },
  -- Server settings, sent as initializationOptions and served to workspace/configuration
  -- requests under the section named by `settings_section`.
  settings = {},
  settings_section = "tinyCopilot",
  -- Files or folders whose nearest parent folder becomes the workspace root; the current
  -- directory is used when none is found.
  root_markers = { ".git" },
  -- Whether suggestions are requested right after setup (`:TinyCopilot enable|disable` toggles).
  enabled = true,
  -- "auto" uses Neovim's own vim.lsp.inline_completion (0.12+) where it exists; false always uses
  -- the plugin's extmark ghost text, which works from 0.7 on.
  native = "auto",
  -- Quiet time after the last edit before a suggestion is requested, for the extmark ghost text.
  -- Neovim 0.12's built-in inline completion uses its own fixed 200 ms debounce.
  debounce_ms = 150,
  -- Highlight group of the extmark ghost text.
  highlight = "Comment",
  -- Insert-mode keys; set one to false to leave that key unmapped. Each key falls back to its
  -- normal meaning when no suggestion is shown.
  keys = {
    accept = "<Tab>",
    accept_word = "<M-Right>",
    accept_line = "<M-C-Right>",
    dismiss = "<C-]>",
    next = "<M-]>",
  },
}

-- The server's default for its enabledLanguages setting, which a test compares with
-- ServerSettings.enabled_languages in server/settings.py, and the entry that enables every language.
M.SERVER_ENABLED_LANGUAGES = { "python", "c", "cpp" }
M.ALL_LANGUAGES = "*"

local function fail(key, expected, value)
  error(
    string.format(
      "tiny_copilot.setup: option %s must be %s, got %s; the options are listed in editor-clients/nvim/README.md",
      key,
      expected,
      vim.inspect(value)
    ),
    0
  )
end

local function is_string_list(value, allow_empty)
  if type(value) ~= "table" or (not allow_empty and #value == 0) then
    return false
  end
  for index, item in pairs(value) do
    if type(index) ~= "number" or type(item) ~= "string" or item == "" then
      return false
    end
  end
  return true
end

local function check_unknown(options, defaults, prefix)
  for key, _ in pairs(options) do
    if defaults[key] == nil then
      local known = vim.tbl_keys(defaults)
      table.sort(known)
      error(
        string.format(
          "tiny_copilot.setup: unknown option %s%s; known options: %s",
          prefix,
          tostring(key),
          table.concat(known, ", ")
        ),
        0
      )
    end
  end
end

local function validate(options)
  if not is_string_list(options.cmd, false) then
    fail("cmd", "a non-empty list of strings (program and arguments)", options.cmd)
  end
  if not is_string_list(options.filetypes, false) then
    fail("filetypes", 'a non-empty list of filetype names, or { "*" }', options.filetypes)
  end
  if type(options.settings) ~= "table" then
    fail("settings", "a table", options.settings)
  end
  if type(options.settings_section) ~= "string" or options.settings_section == "" then
    fail("settings_section", "a non-empty string", options.settings_section)
  end
  if not is_string_list(options.root_markers, true) then
    fail("root_markers", "a list of file or folder names", options.root_markers)
  end
  if type(options.enabled) ~= "boolean" then
    fail("enabled", "true or false", options.enabled)
  end
  if options.native ~= "auto" and options.native ~= false then
    fail("native", '"auto" or false', options.native)
  end
  local debounce_ms = options.debounce_ms
  if type(debounce_ms) ~= "number" or debounce_ms < 0 or debounce_ms > 10000 or debounce_ms % 1 ~= 0 then
    fail("debounce_ms", "a whole number of milliseconds from 0 to 10000", debounce_ms)
  end
  if type(options.highlight) ~= "string" or options.highlight == "" then
    fail("highlight", "a highlight group name", options.highlight)
  end
  for action, lhs in pairs(options.keys) do
    if lhs ~= false and (type(lhs) ~= "string" or lhs == "") then
      fail("keys." .. action, "a key sequence such as \"<Tab>\", or false", lhs)
    end
  end
end

local function is_language_list(value)
  if not is_string_list(value, false) then
    return false
  end
  for _, item in ipairs(value) do
    if vim.trim(item) ~= item then
      return false
    end
  end
  return true
end

--- The language ids that the server gives suggestions for, read from `settings` as the server
--- reads them: flat or under a "tinyCopilot" key, camelCase or snake_case. A missing or invalid
--- value gives the server's default, which is also what the server falls back to.
--- NOTE: an empty list is treated as invalid, because Neovim sends an empty Lua table as {}.
function M.enabled_languages(settings)
  if settings.tinyCopilot ~= nil then
    settings = settings.tinyCopilot
  end
  if type(settings) ~= "table" then
    return M.SERVER_ENABLED_LANGUAGES
  end
  local languages = settings.enabledLanguages
  if languages == nil then
    languages = settings.enabled_languages
  end
  if is_language_list(languages) then
    return languages
  end
  return M.SERVER_ENABLED_LANGUAGES
end

--- A deep copy that keeps vim.NIL (JSON null in settings) as it is: the vim.deepcopy of Neovim
--- 0.7 raises "Cannot deepcopy object of type userdata" on it.
function M.copy(value)
  if type(value) ~= "table" then
    return value
  end
  local result = {}
  for key, item in pairs(value) do
    result[key] = M.copy(item)
  end
  return setmetatable(result, getmetatable(value))
end

--- Merge user options over the defaults and validate the result.
--- Raises an error naming the offending option; never returns a partly valid table.
---@param user table|nil
---@return table options a new table; the defaults are never modified
function M.resolve(user)
  if user ~= nil and type(user) ~= "table" then
    error("tiny_copilot.setup: expected a table of options or nothing, got " .. vim.inspect(user), 0)
  end
  user = user or {}
  check_unknown(user, M.defaults, "")
  if user.keys ~= nil then
    if type(user.keys) ~= "table" then
      fail("keys", "a table of key sequences", user.keys)
    end
    check_unknown(user.keys, M.defaults.keys, "keys.")
  end

  -- Lists replace the default lists whole, so { filetypes = { "lua" } } does not keep "*".
  local options = M.copy(M.defaults)
  for key, value in pairs(user) do
    if key == "keys" then
      options.keys = vim.tbl_extend("force", options.keys, value)
    else
      options[key] = M.copy(value)
    end
  end

  validate(options)
  return options
end

return M
