-- The :TinyCopilot command.
local M = {}

local NAME = "TinyCopilot"
M.subcommands = { "status", "enable", "disable", "restart" }

--- Create :TinyCopilot; `handlers` maps each subcommand to a function without arguments.
function M.create(handlers)
  vim.api.nvim_create_user_command(NAME, function(args)
    local handler = handlers[args.args]
    if not handler then
      vim.notify(
        string.format(
          "tiny-copilot: unknown subcommand %q; use one of: %s",
          args.args,
          table.concat(M.subcommands, ", ")
        ),
        vim.log.levels.ERROR
      )
      return
    end
    handler()
  end, {
    nargs = 1,
    desc = "tiny-copilot: status, enable, disable or restart",
    complete = function(arg_lead)
      return vim.tbl_filter(function(name)
        return name:sub(1, #arg_lead) == arg_lead
      end, M.subcommands)
    end,
  })
end

function M.delete()
  pcall(vim.api.nvim_del_user_command, NAME)
end

return M
