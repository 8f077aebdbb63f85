-- Buffer-local insert-mode keys. Each key acts only when it can (a suggestion is shown, or the
-- action makes sense without one) and otherwise types its usual meaning, so Tab still indents.
local M = {}

-- Action names, in the order :checkhealth and the README list them.
M.actions = { "accept", "accept_word", "accept_line", "dismiss", "next" }

local DESCRIPTIONS = {
  accept = "tiny-copilot: accept the suggestion",
  accept_word = "tiny-copilot: accept the next word of the suggestion",
  accept_line = "tiny-copilot: accept the next line of the suggestion",
  dismiss = "tiny-copilot: dismiss the suggestion",
  next = "tiny-copilot: show the next suggestion",
}

local mapped = {}

--- Map `keys` (action -> lhs or false) in `bufnr`. `can_run(action, bufnr)` decides at once
--- whether the key is ours; `run(action, bufnr)` then runs on the next tick, because an
--- <expr> mapping may not change the buffer.
function M.attach(bufnr, keys, can_run, run)
  M.detach(bufnr)
  local lhs_list = {}
  for _, action in ipairs(M.actions) do
    local lhs = keys[action]
    if lhs then
      vim.keymap.set("i", lhs, function()
        if not can_run(action, bufnr) then
          return lhs
        end
        vim.schedule(function()
          run(action, bufnr)
        end)
        return ""
      end, { buffer = bufnr, expr = true, silent = true, desc = DESCRIPTIONS[action] })
      lhs_list[#lhs_list + 1] = lhs
    end
  end
  mapped[bufnr] = lhs_list
end

function M.detach(bufnr)
  local lhs_list = mapped[bufnr]
  mapped[bufnr] = nil
  if not lhs_list or not vim.api.nvim_buf_is_valid(bufnr) then
    return
  end
  for _, lhs in ipairs(lhs_list) do
    pcall(vim.keymap.del, "i", lhs, { buffer = bufnr })
  end
end

function M.detach_all()
  for bufnr, _ in pairs(mapped) do
    M.detach(bufnr)
  end
end

return M
