-- Differences between the Neovim versions the plugin supports (0.7 to 0.12), in one place.
local M = {}

local function has(feature)
  return vim.fn.has(feature) == 1
end

--- True when Neovim ships vim.lsp.inline_completion (0.12 and later).
function M.has_native_inline_completion()
  local ok, module = pcall(require, "vim.lsp.inline_completion")
  return ok and type(module) == "table" and type(module.enable) == "function"
end

--- True when extmarks accept virt_text_pos = "inline" (0.10 and later), which shifts the text
--- right of the cursor instead of painting over it.
function M.has_inline_virt_text()
  return has("nvim-0.10")
end

-- Neovim 0.11 turned client methods into `client:method(...)`; 0.7 to 0.10 call
-- `client.method(...)` without self. Calling the wrong form passes the client as the method name.
local method_call = has("nvim-0.11")

function M.client_request(client, method, params, handler, bufnr)
  if method_call then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

function M.client_cancel_request(client, request_id)
  if method_call then
    return client:cancel_request(request_id)
  end
  return client.cancel_request(request_id)
end

function M.client_stop(client, force)
  if method_call then
    return client:stop(force)
  end
  return client.stop(force)
end

function M.client_is_stopped(client)
  if method_call then
    return client:is_stopped()
  end
  return client.is_stopped()
end

--- Every running client (vim.lsp.get_clients on 0.10+, get_active_clients before).
function M.get_clients()
  if vim.lsp.get_clients then
    return vim.lsp.get_clients()
  end
  return vim.lsp.get_active_clients()
end

--- Position of the cursor in `window`, in the client's offset encoding, as an LSP Position.
function M.cursor_position_params(window, client)
  local params = vim.lsp.util.make_position_params(window, client.offset_encoding)
  return params.position
end

--- Column (0-based byte) in `line` of an LSP character offset in the client's encoding.
function M.byte_col(line, character, client)
  local encoding = client.offset_encoding or "utf-16"
  if encoding == "utf-8" then
    return math.min(character, #line)
  end
  -- 0.11 changed the signature to (s, encoding, index, strict) and deprecated the old one.
  local ok, col
  if method_call then
    ok, col = pcall(vim.str_byteindex, line, encoding, character, false)
  else
    ok, col = pcall(vim.str_byteindex, line, character, encoding == "utf-16")
  end
  if ok then
    return col
  end
  return #line
end

--- True when Neovim's LSP client tells servers about a renamed buffer itself: 0.8 and later send
--- didOpen under the new name on the next write (:saveas writes at once), 0.7 sends nothing.
function M.lsp_reopens_renamed_buffers()
  return has("nvim-0.8")
end

--- True while the buffer may not change, as inside an <expr> mapping (E565 on 0.12, "Failed to
--- save undo information" on 0.7). Making the current window current again is refused then and
--- does nothing otherwise.
function M.text_locked()
  return not pcall(vim.api.nvim_set_current_win, vim.api.nvim_get_current_win())
end

--- Create the plugin's augroup from scratch; `desc` on autocmds needs 0.7, which is our floor.
function M.augroup(name)
  return vim.api.nvim_create_augroup(name, { clear = true })
end

return M
