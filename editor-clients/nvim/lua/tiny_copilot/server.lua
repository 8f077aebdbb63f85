-- Starting, attaching and stopping the tiny-copilot-lsp client. One client serves every buffer:
-- the model does not depend on the workspace, and each server process loads its own copy.
local compat = require("tiny_copilot.compat")

local M = {}

local CLIENT_NAME = "tiny_copilot"
local uv = vim.uv or vim.loop

local state = {
  client_id = nil,
  options = nil,
  on_attach = nil,
  -- The missing-command error is shown once, not on every file opened.
  reported_missing_cmd = false,
  -- $/progress of the running server: reports in progress, reports ended, latest message, and
  -- the message of the latest end ("model ready" or "model not loaded").
  progress = { active = 0, finished = 0, message = nil, outcome = nil },
  -- The latest error the running server reported with window/showMessage, or nil.
  last_error = nil,
  on_progress_end = nil,
  -- Called when the running server exits without stop(); the buffers it served lose it.
  on_exit = nil,
}

--- Nearest folder above the buffer's file that contains one of `markers`, else the current
--- directory.
local function find_root(bufnr, markers)
  local name = vim.api.nvim_buf_get_name(bufnr)
  local start = name ~= "" and vim.fn.fnamemodify(name, ":p:h") or uv.cwd()
  local best = nil
  for _, marker in ipairs(markers) do
    local found = vim.fn.finddir(marker, start .. ";")
    local root
    if found ~= "" then
      root = vim.fn.fnamemodify(found, ":p:h:h")
    else
      found = vim.fn.findfile(marker, start .. ";")
      root = found ~= "" and vim.fn.fnamemodify(found, ":p:h") or nil
    end
    if root and (best == nil or #root > #best) then
      best = root
    end
  end
  return best or uv.cwd()
end

-- An empty Lua table encodes as a JSON array; the server expects objects.
local function json_object(value)
  if next(value) == nil then
    return vim.empty_dict()
  end
  return value
end

-- Work-done progress of our server (it reports loading the model this way): keep the default
-- handler, which feeds statuslines, and count what began and ended.
local function progress_handler(err, result, ctx, handler_config)
  local default = vim.lsp.handlers["$/progress"]
  local returned = default and default(err, result, ctx, handler_config)
  local kind = result and result.value and result.value.kind
  if ctx.client_id == state.client_id and (kind == "begin" or kind == "end") then
    local progress = state.progress
    if kind == "begin" then
      progress.active = progress.active + 1
      progress.message = result.value.message or result.value.title
      -- Our server reports errors only about loading a model, and this load starts afresh.
      state.last_error = nil
    else
      progress.active = math.max(0, progress.active - 1)
      progress.finished = progress.finished + 1
      progress.message = nil
      progress.outcome = result.value.message
      if state.on_progress_end then
        state.on_progress_end()
      end
    end
  end
  return returned
end

-- window/showMessage: keep the default handler, which shows the message, and remember the
-- latest error for :checkhealth and :TinyCopilot status, which a user reads later.
local function show_message_handler(err, result, ctx, handler_config)
  local default = vim.lsp.handlers["window/showMessage"]
  local returned = default and default(err, result, ctx, handler_config)
  if ctx.client_id == state.client_id and result and result.type == vim.lsp.protocol.MessageType.Error then
    state.last_error = result.message
  end
  return returned
end

local function client_config(bufnr)
  local options = state.options
  return {
    name = CLIENT_NAME,
    cmd = options.cmd,
    root_dir = find_root(bufnr, options.root_markers),
    init_options = json_object(options.settings),
    settings = { [options.settings_section] = json_object(options.settings) },
    handlers = { ["$/progress"] = progress_handler, ["window/showMessage"] = show_message_handler },
    on_attach = function(client, attached_bufnr)
      if state.on_attach and client.id == state.client_id then
        state.on_attach(client, attached_bufnr)
      end
    end,
    on_exit = function(code, signal, client_id)
      if client_id ~= state.client_id then
        return
      end
      state.client_id = nil
      vim.schedule(function()
        -- Exit code 0 with a signal is a kill (SIGKILL from the OOM killer, say), so report it too.
        if code ~= 0 or signal ~= 0 then
          vim.notify(
            string.format(
              "tiny-copilot: language server exited with code %d (signal %d); :TinyCopilot restart starts it again, and :LspLog shows its output",
              code,
              signal
            ),
            vim.log.levels.ERROR
          )
        end
        if state.on_exit then
          state.on_exit()
        end
      end)
    end,
  }
end

local function command_missing()
  local program = state.options.cmd[1]
  if vim.fn.executable(program) == 1 then
    return false
  end
  if not state.reported_missing_cmd then
    state.reported_missing_cmd = true
    vim.notify(
      string.format(
        "tiny-copilot: server command %q not found; install tiny-copilot (from its clone: pip install /path/to/tiny-copilot) or set cmd in setup()",
        program
      ),
      vim.log.levels.ERROR
    )
  end
  return true
end

--- Remember the options, the per-buffer attach callback `on_attach(client, bufnr)`,
--- `on_progress_end()`, called when the server ends a progress report (the model is loaded),
--- and `on_exit()`, called when the server exits without stop().
function M.configure(options, on_attach, on_progress_end, on_exit)
  state.options = options
  state.on_attach = on_attach
  state.on_progress_end = on_progress_end
  state.on_exit = on_exit
  state.reported_missing_cmd = false
end

--- Progress reports of the running server: { active, finished, message, outcome }.
function M.progress()
  return vim.deepcopy(state.progress)
end

--- The latest error message of the running server, or nil.
function M.last_error()
  return state.last_error
end

--- The running client, or nil.
function M.client()
  if not state.client_id then
    return nil
  end
  local client = vim.lsp.get_client_by_id(state.client_id)
  if not client or compat.client_is_stopped(client) then
    return nil
  end
  return client
end

--- Attach `bufnr` to the client, starting the server first when none runs.
function M.attach(bufnr)
  if command_missing() then
    return nil
  end

  if not M.client() then
    state.progress = { active = 0, finished = 0, message = nil, outcome = nil }
    state.last_error = nil
  end

  if vim.lsp.start then
    local client_id = vim.lsp.start(client_config(bufnr), {
      bufnr = bufnr,
      reuse_client = function(client, _)
        return client.id == state.client_id and not compat.client_is_stopped(client)
      end,
    })
    -- vim.lsp.start returns the id it reused, or the id of a client it just started.
    if client_id then
      state.client_id = client_id
    end
    return client_id
  end

  -- Neovim 0.7 has no vim.lsp.start: start one client and attach each buffer by hand.
  if not M.client() then
    state.client_id = vim.lsp.start_client(client_config(bufnr))
    if not state.client_id then
      return nil
    end
  end
  vim.lsp.buf_attach_client(bufnr, state.client_id)
  return state.client_id
end

local LINE_ENDINGS = { dos = "\r\n", mac = "\r", unix = "\n" }

-- The buffer's text as Neovim's client sends it in didOpen.
local function full_text(bufnr)
  local line_ending = LINE_ENDINGS[vim.bo[bufnr].fileformat] or "\n"
  local text = table.concat(vim.api.nvim_buf_get_lines(bufnr, 0, -1, true), line_ending)
  if vim.bo[bufnr].eol then
    text = text .. line_ending
  end
  return text
end

--- Tell the server that `bufnr`, known to it as `old_name`, is now called by its current name.
--- Neovim 0.7's client goes on with the new URI in didChange and requests without a didOpen, so
--- after :saveas the server returned no suggestion: "the document is not open".
--- Later versions do this themselves, and there this does nothing.
function M.reopen_renamed(bufnr, old_name)
  local client = M.client()
  if compat.lsp_reopens_renamed_buffers() or not client or not vim.lsp.buf_is_attached(bufnr, client.id) then
    return
  end
  local filetype = vim.bo[bufnr].filetype
  local language_id = client.config.get_language_id and client.config.get_language_id(bufnr, filetype) or filetype
  client.notify("textDocument/didClose", { textDocument = { uri = vim.uri_from_fname(old_name) } })
  client.notify("textDocument/didOpen", {
    textDocument = {
      uri = vim.uri_from_bufnr(bufnr),
      languageId = language_id,
      version = vim.lsp.util.buf_versions[bufnr] or 0,
      text = full_text(bufnr),
    },
  })
end

--- Buffers attached to the client.
function M.attached_buffers()
  local client = M.client()
  if not client then
    return {}
  end
  return vim.lsp.get_buffers_by_client_id(client.id)
end

--- Stop the server. With `wait_ms`, block until it has exited or the time is up.
function M.stop(wait_ms)
  local client = M.client()
  state.client_id = nil
  state.progress = { active = 0, finished = 0, message = nil, outcome = nil }
  state.last_error = nil
  if not client then
    return
  end
  compat.client_stop(client)
  if wait_ms then
    vim.wait(wait_ms, function()
      return compat.client_is_stopped(client)
    end, 20)
  end
end

function M.forget()
  M.stop()
  state.options = nil
  state.on_attach = nil
  state.on_progress_end = nil
  state.on_exit = nil
end

return M
