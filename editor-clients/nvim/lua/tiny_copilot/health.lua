-- :checkhealth tiny_copilot. Neovim 0.7 finds this file and reports through require("health")
-- (report_start, report_ok, ...); 0.8 added vim.health with the same names, and 0.10 renamed
-- them to start, ok, warn, error and info.
local M = {}

local function reporter()
  local health = vim.health or require("health")
  return {
    start = health.start or health.report_start,
    ok = health.ok or health.report_ok,
    warn = health.warn or health.report_warn,
    error = health.error or health.report_error,
    info = health.info or health.report_info,
  }
end

local function check_neovim(report)
  local version = vim.version()
  local text = string.format("%d.%d.%d", version.major, version.minor, version.patch)
  if vim.fn.has("nvim-0.7") ~= 1 then
    report.error("Neovim " .. text .. " is too old; tiny-copilot needs 0.7 or later")
    return
  end
  if require("tiny_copilot.compat").has_native_inline_completion() then
    report.ok("Neovim " .. text .. ": vim.lsp.inline_completion is available")
  else
    report.ok("Neovim " .. text .. ": ghost text is drawn by the plugin with extmarks")
  end
end

local function check_command(report, options)
  local program = options.cmd[1]
  local path = vim.fn.exepath(program)
  if path == "" then
    report.error(
      string.format("server command %q not found", program),
      { "Install tiny-copilot (from its clone: pip install /path/to/tiny-copilot), or set cmd in setup() to the full path of tiny-copilot-lsp" }
    )
    return
  end
  report.ok("server command: " .. path .. " " .. table.concat(options.cmd, " ", 2))
end

-- The server stays up without a model when its checkpoint fails to load, and then suggests nothing.
local function check_model(report, status)
  local reason = status.server_error or "the server reported no reason; see :LspLog"
  if status.model == "not loaded" then
    report.error("the server has no model: " .. reason, {
      "Fix --checkpoint in cmd or the checkpoint setting, then run :TinyCopilot restart",
    })
  elseif status.model == "loading" then
    report.warn("the server is still loading the model")
  elseif status.model == "ready" then
    report.ok("the model is loaded")
    if status.server_error then
      report.warn("the server reported: " .. status.server_error)
    end
  end
end

local function check_server(report, status)
  if not status.server_running then
    report.warn(
      "the language server is not running",
      { "Open a file whose filetype is in `filetypes`, or run :TinyCopilot restart; :LspLog shows why a start failed" }
    )
    return
  end
  local client = vim.lsp.get_client_by_id(status.client_id)
  if not status.server_initialized then
    report.warn(string.format("client %d is still starting", status.client_id))
    return
  end
  report.ok(string.format("client %d is running, %d buffer(s) attached", status.client_id, #status.attached_buffers))

  local capabilities = client and client.server_capabilities or {}
  if capabilities.inlineCompletionProvider then
    report.ok("the server offers textDocument/inlineCompletion")
  else
    report.error("the server does not offer textDocument/inlineCompletion", {
      "Check that cmd starts tiny-copilot-lsp and not another language server",
    })
  end
  check_model(report, status)
end

-- File buffers that get no suggestions, grouped by reason, with the buffers' names.
local function check_buffers(report, tiny_copilot)
  local reasons = {}
  local names_by_reason = {}
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    local loaded = vim.api.nvim_buf_is_loaded(bufnr)
    if loaded and vim.bo[bufnr].buftype == "" and vim.api.nvim_buf_get_name(bufnr) ~= "" then
      local buffer = tiny_copilot.buffer_status(bufnr)
      if buffer.reason then
        if not names_by_reason[buffer.reason] then
          reasons[#reasons + 1] = buffer
          names_by_reason[buffer.reason] = {}
        end
        table.insert(names_by_reason[buffer.reason], vim.fn.fnamemodify(buffer.name, ":~:."))
      end
    end
  end

  for _, buffer in ipairs(reasons) do
    local names = table.concat(names_by_reason[buffer.reason], ", ")
    local advice = buffer.fix:gsub("^%l", string.upper)
    report.warn(string.format("no suggestions in %s: %s", names, buffer.reason), { advice })
  end
end

function M.check()
  local report = reporter()
  report.start("tiny-copilot")
  check_neovim(report)

  local tiny_copilot = require("tiny_copilot")
  local status = tiny_copilot.status()
  if not status.setup then
    report.warn("setup() has not been called", { "Add require('tiny_copilot').setup({}) to your config" })
    return
  end
  local options = tiny_copilot.options()
  report.info(
    string.format(
      "%s; suggestions %s; filetypes: %s; enabledLanguages: %s",
      status.frontend == "native" and "using vim.lsp.inline_completion" or "using extmark ghost text",
      status.enabled and "enabled" or "disabled (:TinyCopilot enable)",
      table.concat(options.filetypes, ", "),
      table.concat(require("tiny_copilot.config").enabled_languages(options.settings), ", ")
    )
  )
  check_command(report, options)
  check_server(report, status)
  check_buffers(report, tiny_copilot)
end

return M
