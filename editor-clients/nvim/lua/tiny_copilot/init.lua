-- tiny-copilot for Neovim: offline inline completions from a small model trained on your code.
--
--   require("tiny_copilot").setup({ cmd = { "tiny-copilot-lsp", "--checkpoint", "/path/to/ckpt" } })
--
-- setup() can be called again (it replaces the previous setup) and teardown() removes every
-- autocmd, key, command and extmark and stops the server.
local commands = require("tiny_copilot.commands")
local compat = require("tiny_copilot.compat")
local config = require("tiny_copilot.config")
local keymaps = require("tiny_copilot.keymaps")
local server = require("tiny_copilot.server")

local M = {}

local api = vim.api
local AUGROUP = "tiny_copilot"

local state = {
  options = nil,
  -- ghost (extmarks drawn by the plugin) or native (vim.lsp.inline_completion).
  frontend = nil,
  frontend_name = nil,
  enabled = false,
  attached = {},
  -- Buffers that were attached to a server that exited; the next server started takes them back.
  orphaned = {},
}

local function current_buf(bufnr)
  if bufnr == nil or bufnr == 0 then
    return api.nvim_get_current_buf()
  end
  return bufnr
end

local function filetype_wanted(filetype)
  for _, allowed in ipairs(state.options.filetypes) do
    if allowed == "*" or allowed == filetype then
      return true
    end
  end
  return false
end

local function wants_buffer(bufnr)
  if not api.nvim_buf_is_valid(bufnr) or vim.bo[bufnr].buftype ~= "" then
    return false
  end
  -- The server needs a file URI; unnamed scratch buffers have none.
  if api.nvim_buf_get_name(bufnr) == "" then
    return false
  end
  return filetype_wanted(vim.bo[bufnr].filetype)
end

-- Why buffer `bufnr` can get no suggestions, whatever the server loads: a reason and a fix (nil
-- when there is none to offer), or nil when the plugin's options and the server's settings allow it.
local function why_no_suggestions(bufnr)
  local buftype = vim.bo[bufnr].buftype
  if buftype ~= "" then
    return string.format("the buffer is not a file (buftype %q)", buftype), nil
  end
  if api.nvim_buf_get_name(bufnr) == "" then
    return "the buffer has no file name", "save it with :write {file}"
  end

  local filetype = vim.bo[bufnr].filetype
  if not filetype_wanted(filetype) then
    return string.format("filetype %q is not in the filetypes option (%s)", filetype, table.concat(state.options.filetypes, ", ")),
      string.format('add "%s" to filetypes in setup()', filetype)
  end

  -- The client sends the filetype as the LSP language id: the plugin sets no get_language_id.
  local languages = config.enabled_languages(state.options.settings)
  if not vim.tbl_contains(languages, config.ALL_LANGUAGES) and not vim.tbl_contains(languages, filetype) then
    return string.format("language %q is not in the enabledLanguages setting (%s)", filetype, table.concat(languages, ", ")),
      string.format('add "%s" to settings.enabledLanguages in setup(), or set it to { "*" } for every language', filetype)
  end
  return nil
end

local function can_run(action, bufnr)
  if not state.enabled or not state.attached[bufnr] then
    return false
  end
  -- With our own ghost text, "next" with nothing shown requests a suggestion right away.
  if action == "next" and state.frontend_name == "ghost" then
    return true
  end
  return state.frontend.visible(bufnr)
end

local function run(action, bufnr)
  if action == "accept" then
    state.frontend.accept(bufnr, "all")
  elseif action == "accept_word" then
    state.frontend.accept(bufnr, "word")
  elseif action == "accept_line" then
    state.frontend.accept(bufnr, "line")
  elseif action == "dismiss" then
    state.frontend.dismiss(bufnr)
  elseif action == "next" then
    state.frontend.next(bufnr)
  end
end

-- Follow :saveas and :file on an attached buffer, so that the server has it under its new name.
local function watch_renames(bufnr)
  local name = api.nvim_buf_get_name(bufnr)
  api.nvim_create_autocmd("BufFilePost", {
    group = AUGROUP,
    buffer = bufnr,
    desc = "tiny-copilot: reopen a renamed buffer in the language server",
    callback = function()
      local old_name = name
      name = api.nvim_buf_get_name(bufnr)
      if state.attached[bufnr] and old_name ~= name then
        server.reopen_renamed(bufnr, old_name)
      end
    end,
  })
end

local function detach(bufnr)
  if not state.attached[bufnr] then
    return
  end
  state.attached[bufnr] = nil
  state.frontend.detach(bufnr)
  keymaps.detach(bufnr)
  pcall(api.nvim_clear_autocmds, { group = AUGROUP, buffer = bufnr })
end

-- Called by the client for every buffer it attaches, once the server is initialized.
local function on_attach(_, bufnr)
  if not state.options or state.attached[bufnr] then
    return
  end
  state.attached[bufnr] = true
  state.frontend.attach(bufnr)
  keymaps.attach(bufnr, state.options.keys, can_run, run)
  watch_renames(bufnr)
  -- :bdelete unloads the buffer but keeps its number for the next :edit of the file, and the client
  -- calls on_attach again then: without this, the buffer would still count as attached and be skipped.
  api.nvim_create_autocmd("BufUnload", {
    group = AUGROUP,
    buffer = bufnr,
    desc = "tiny-copilot: detach an unloaded buffer, so that reopening it attaches it again",
    callback = function()
      detach(bufnr)
    end,
  })
end

-- Requests sent while the model loads get no suggestion; ask again once it is ready, so the
-- user need not type another key.
local function on_progress_end()
  local bufnr = api.nvim_get_current_buf()
  if state.enabled and state.attached[bufnr] and state.frontend.refresh then
    state.frontend.refresh(bufnr)
  end
end

-- The server exited on its own: its buffers get no suggestions until a new one serves them.
local function on_server_exit()
  for bufnr, _ in pairs(state.attached) do
    detach(bufnr)
    state.orphaned[bufnr] = true
  end
end

local function maybe_attach(bufnr)
  if not state.options or not wants_buffer(bufnr) then
    return
  end
  if not server.attach(bufnr) then
    return
  end
  -- Buffers of a server that exited move to this one.
  local orphaned = state.orphaned
  state.orphaned = {}
  for orphan, _ in pairs(orphaned) do
    if orphan ~= bufnr and wants_buffer(orphan) and api.nvim_buf_is_loaded(orphan) then
      server.attach(orphan)
    end
  end
end

local function choose_frontend(options)
  if options.native == "auto" and compat.has_native_inline_completion() then
    return "native", require("tiny_copilot.native")
  end
  return "ghost", require("tiny_copilot.ghost")
end

local function frontend_options(options)
  return {
    debounce_ms = options.debounce_ms,
    highlight = options.highlight,
    client = server.client,
    is_enabled = function()
      return state.enabled
    end,
  }
end

-- Options whose change needs a new server process.
local function same_server(a, b)
  return vim.deep_equal(a.cmd, b.cmd)
    and vim.deep_equal(a.settings, b.settings)
    and a.settings_section == b.settings_section
    and vim.deep_equal(a.root_markers, b.root_markers)
end

local function remove_ui()
  for bufnr, _ in pairs(state.attached) do
    detach(bufnr)
  end
  keymaps.detach_all()
  if state.frontend then
    state.frontend.stop()
  end
  commands.delete()
  pcall(api.nvim_del_augroup_by_name, AUGROUP)
  state.frontend = nil
  state.frontend_name = nil
end

--- Configure and start the plugin. Options are documented in lua/tiny_copilot/config.lua and
--- the README; invalid options raise an error and leave the previous setup untouched.
function M.setup(user_options)
  local options = config.resolve(user_options)

  local keep_server = state.options ~= nil and same_server(state.options, options)
  remove_ui()
  if not keep_server then
    server.stop()
  end

  state.options = options
  state.enabled = options.enabled
  state.frontend_name, state.frontend = choose_frontend(options)
  state.frontend.start(frontend_options(options))
  server.configure(options, on_attach, on_progress_end, on_server_exit)

  local group = compat.augroup(AUGROUP)
  api.nvim_create_autocmd("FileType", {
    group = group,
    desc = "tiny-copilot: attach the language server to matching buffers",
    callback = function(args)
      maybe_attach(args.buf)
    end,
  })
  commands.create({
    status = M.show_status,
    enable = M.enable,
    disable = M.disable,
    restart = M.restart,
  })

  -- Buffers opened before setup() get no FileType event of their own.
  for _, bufnr in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(bufnr) then
      maybe_attach(bufnr)
    end
  end
  -- A kept server has these buffers already; attaching again calls no on_attach.
  for _, bufnr in ipairs(server.attached_buffers()) do
    on_attach(nil, bufnr)
  end
end

--- Undo setup(): stop the server and remove every autocmd, key, command and extmark.
function M.teardown()
  remove_ui()
  server.stop()
  server.forget()
  state.options = nil
  state.enabled = false
  state.attached = {}
  state.orphaned = {}
end

function M.enable()
  if not state.options then
    vim.notify("tiny-copilot: call require('tiny_copilot').setup() first", vim.log.levels.ERROR)
    return
  end
  state.enabled = true
  state.frontend.set_enabled(true)
end

function M.disable()
  if not state.options then
    return
  end
  state.enabled = false
  state.frontend.set_enabled(false)
end

--- Stop the server and start a new one for the same buffers (after retraining the model, say).
function M.restart()
  if not state.options then
    vim.notify("tiny-copilot: call require('tiny_copilot').setup() first", vim.log.levels.ERROR)
    return
  end
  local buffers = vim.tbl_keys(state.attached)
  for _, bufnr in ipairs(buffers) do
    detach(bufnr)
  end
  for bufnr, _ in pairs(state.orphaned) do
    buffers[#buffers + 1] = bufnr
  end
  state.orphaned = {}
  server.stop(2000)
  server.configure(state.options, on_attach, on_progress_end, on_server_exit)
  for _, bufnr in ipairs(buffers) do
    maybe_attach(bufnr)
  end
end

-- The server's model, from its progress reports: "loading", "ready", "not loaded", or nil
-- before the first report.
local function model_state(progress)
  if progress.active > 0 then
    return "loading"
  end
  if progress.outcome == "model ready" then
    return "ready"
  end
  if progress.outcome == "model not loaded" then
    return "not loaded"
  end
  return nil
end

--- Whether buffer `bufnr` (default: current) can get suggestions, as { bufnr, name, filetype,
--- attached, reason, fix }; `reason` and `fix` are nil when nothing stops them. nil before setup().
function M.buffer_status(bufnr)
  if not state.options then
    return nil
  end
  bufnr = current_buf(bufnr)
  local reason, fix = why_no_suggestions(bufnr)
  return {
    bufnr = bufnr,
    name = api.nvim_buf_get_name(bufnr),
    filetype = vim.bo[bufnr].filetype,
    attached = state.attached[bufnr] == true,
    reason = reason,
    fix = fix,
  }
end

--- A table describing the plugin's state; :TinyCopilot status prints it.
function M.status()
  local client = server.client()
  local progress = server.progress()
  local buffers = vim.tbl_keys(state.attached)
  table.sort(buffers)
  return {
    setup = state.options ~= nil,
    enabled = state.enabled,
    frontend = state.frontend_name,
    cmd = state.options and state.options.cmd or nil,
    client_id = client and client.id or nil,
    server_running = client ~= nil,
    server_initialized = client ~= nil and client.initialized == true,
    attached_buffers = buffers,
    -- Work-done progress of the server, e.g. { active = 1, message = "loading the model" }.
    progress = progress,
    model = client and model_state(progress) or nil,
    -- The latest error the server reported, such as a checkpoint that failed to load.
    server_error = client and server.last_error() or nil,
    requests_in_flight = state.frontend and state.frontend.pending_count() or 0,
    current_buffer = M.buffer_status(),
  }
end

local function current_buffer_line(status)
  local buffer = status.current_buffer
  if buffer.reason then
    local fix = buffer.fix and "; " .. buffer.fix or ""
    return "current buffer: no suggestions, because " .. buffer.reason .. fix
  end
  local switch = status.enabled and "on" or "off everywhere (:TinyCopilot enable)"
  return string.format("current buffer: %s, suggestions %s", buffer.filetype, switch)
end

function M.show_status()
  local status = M.status()
  if not status.setup then
    vim.notify("tiny-copilot: not set up; call require('tiny_copilot').setup()", vim.log.levels.WARN)
    return
  end
  local server_text = "not running"
  if status.server_running then
    server_text = string.format(
      "running as client %d (%s)",
      status.client_id,
      status.server_initialized and "initialized" or "starting"
    )
  end
  local frontend_text = status.frontend == "native" and "Neovim's vim.lsp.inline_completion"
    or "extmark ghost text"
  local lines = {
    string.format("tiny-copilot: %s, %s", status.enabled and "enabled" or "disabled", frontend_text),
    "server: " .. server_text .. "; cmd: " .. table.concat(status.cmd, " "),
  }
  if status.model then
    lines[#lines + 1] = "model: " .. status.model
  end
  if status.server_error then
    lines[#lines + 1] = "server error: " .. status.server_error
  end
  lines[#lines + 1] = string.format(
    "attached buffers: %d; requests in flight: %d",
    #status.attached_buffers,
    status.requests_in_flight
  )
  lines[#lines + 1] = current_buffer_line(status)
  local blocked = status.model == "not loaded" or status.current_buffer.reason ~= nil
  local level = blocked and vim.log.levels.WARN or vim.log.levels.INFO
  vim.notify(table.concat(lines, "\n"), level)
end

local function action(name, part)
  return function(bufnr)
    bufnr = current_buf(bufnr)
    if not state.frontend or not state.attached[bufnr] then
      return false
    end
    -- An <expr> mapping may not change the buffer, so an accept from one runs on the next tick,
    -- as vim.lsp.inline_completion.get() of Neovim 0.12 does.
    if name == "accept" and compat.text_locked() then
      if not state.frontend.visible(bufnr) then
        return false
      end
      local frontend = state.frontend
      vim.schedule(function()
        frontend.accept(bufnr, part)
      end)
      return true
    end
    if part then
      return state.frontend[name](bufnr, part)
    end
    return state.frontend[name](bufnr)
  end
end

--- Actions for custom mappings; each takes an optional buffer (default: current) and returns
--- false when it did nothing.
M.accept = action("accept", "all")
M.accept_word = action("accept", "word")
M.accept_line = action("accept", "line")
M.dismiss = action("dismiss")
M.next = action("next")
M.is_visible = action("visible")

--- The shown suggestion as { text, row, col, ... } (0-based row and byte column), or nil.
M.current = action("current")

--- The options in force (a copy), or nil before setup().
function M.options()
  return state.options and config.copy(state.options) or nil
end

return M
