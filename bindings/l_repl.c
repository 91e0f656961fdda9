/* kboot.repl: the parts of the interactive prompt Lua cannot do itself: libedit line editing,
 * history and Tab completion, and interrupting a running chunk with Ctrl-C (as lua.c does).
 * The read-eval-print loop itself is scripts/repl.lua. */
#include <dlfcn.h>
#include <editline/readline.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common.h"
#include "kboot/dl.h"
#include "kboot/intr.h"
#include "kboot/log.h"
#include "loader.h"

#define HISTORY_MAX 1000
/* Word breaks for completion: operators and brackets, but not '.' or ':' so that the word
 * under the cursor is a whole field path such as `pki.gen` or `obj:meth`. */
static char word_breaks[] = " \t\n\"\\'`@$><=;|&{}()[],+-*/%^~#";

/* libedit's state is process-wide, so this module's is too (kboot has one Lua state).
 * rl_state is set while inside readline(): the state the completion callback calls into. */
static lua_State *rl_state;
static int completer_ref = LUA_NOREF;
static volatile sig_atomic_t got_sigint;
static int rl_ready;

/* ---- libedit, loaded on first use ----
 * Only the interactive prompt needs libedit (and with it libtinfo, libbsd, libmd), so it is
 * dlopen()ed then rather than linked into every kboot run. Functions are called through
 * pointers of libedit's own prototypes, its variables through pointers to them. Without it
 * the prompt still works, as plain lines without editing or history.
 * KBOOT_LIBEDIT names another file to load instead (a path or a soname). */
#define EDIT_SYMS(X)                                                                            \
    X(readline) X(add_history) X(read_history) X(write_history) X(using_history)                \
    X(stifle_history) X(rl_initialize) X(rl_completion_matches) X(rl_readline_name)             \
    X(rl_attempted_completion_function) X(rl_basic_word_break_characters)                       \
    X(rl_completer_word_break_characters) X(rl_completion_append_character)                     \
    X(rl_attempted_completion_over) X(rl_line_buffer)
#define EDIT_SYM_DECL(f) static __typeof__(f) *sym_##f;
EDIT_SYMS(EDIT_SYM_DECL)
#undef EDIT_SYM_DECL
#define LIBEDIT "libedit.so.2"

static char edit_err[512]; /* why libedit is unusable, once tried */
static int edit_tried;

/* 0 if libedit is loaded; else -1 with edit_err set (the same answer on every call). */
static int load_edit(void)
{
    if (edit_tried)
        return edit_err[0] ? -1 : 0;
    edit_tried = 1;
#define EDIT_SYM_ENTRY(f) { #f, (void **)&sym_##f },
    static const kb_dl_sym syms[] = { EDIT_SYMS(EDIT_SYM_ENTRY) };
#undef EDIT_SYM_ENTRY
    return kb_dl_load("KBOOT_LIBEDIT", LIBEDIT, "libedit2", syms, sizeof syms / sizeof syms[0], edit_err,
                      sizeof edit_err);
}

/* Candidates of the current completion, handed one by one to rl_completion_matches. */
static char **cands;
static size_t ncands, cand_next;

static void free_cands(void)
{
    for (size_t i = cand_next; i < ncands; i++)
        free(cands[i]);
    free(cands);
    cands = NULL;
    ncands = cand_next = 0;
}

/* rl_completion_matches takes ownership of each string the generator returns. */
static char *cand_generator(const char *text, int state)
{
    (void)text;
    (void)state;
    return cand_next < ncands ? cands[cand_next++] : NULL;
}

/* Runs inside libedit: a Lua error must not longjmp through its frames, hence the pcall. */
static int call_completer(lua_State *L)
{
    const char *text = lua_touserdata(L, 1);
    const char *line = lua_touserdata(L, 2);
    int start = (int)lua_tointeger(L, 3);
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, completer_ref);
    lua_pushstring(L, text);
    lua_pushlstring(L, line, (size_t)start);
    lua_call(L, 2, 1);
    if (!lua_istable(L, -1))
        return 0;
    lua_Integer n = luaL_len(L, -1);
    if (n <= 0)
        return 0;
    cands = calloc((size_t)n, sizeof *cands);
    if (!cands)
        return luaL_error(L, "not enough memory");
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        const char *s = lua_tostring(L, -1);
        if (s && (cands[ncands] = strdup(s)))
            ncands++;
        lua_pop(L, 1);
    }
    return 0;
}

static char **complete(const char *text, int start, int end)
{
    (void)end;
    *sym_rl_attempted_completion_over = 1; /* never fall back to file names */
    lua_State *L = rl_state;
    if (!L || completer_ref == LUA_NOREF || !lua_checkstack(L, 8))
        return NULL;
    const char *line = *sym_rl_line_buffer ? *sym_rl_line_buffer : "";
    if (start < 0 || (size_t)start > strlen(line))
        start = 0;
    int top = lua_gettop(L);
    lua_pushcfunction(L, call_completer);
    lua_pushlightuserdata(L, (void *)text);
    lua_pushlightuserdata(L, (void *)line);
    lua_pushinteger(L, start);
    char **matches = NULL;
    if (lua_pcall(L, 3, 0, 0) == LUA_OK && ncands > 0)
        matches = sym_rl_completion_matches(text, cand_generator);
    lua_settop(L, top);
    free_cands();
    return matches;
}

static void on_sigint_at_prompt(int sig)
{
    (void)sig;
    got_sigint = 1;
}

/* 0 when libedit is ready; -1 (edit_err says why) when it cannot be loaded. */
static int init_editline(void)
{
    if (rl_ready)
        return 0;
    if (load_edit() < 0)
        return -1;
    *sym_rl_readline_name = "kboot";
    *sym_rl_attempted_completion_function = complete;
    *sym_rl_basic_word_break_characters = word_breaks;
    *sym_rl_completer_word_break_characters = word_breaks;
    *sym_rl_completion_append_character = '\0';
    sym_rl_initialize();
    sym_using_history();
    sym_stifle_history(HISTORY_MAX);
    rl_ready = 1;
    return 0;
}

/* Without a terminal: a plain line from stdin, no prompt, no libedit. */
static int read_plain(lua_State *L)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int c = EOF;
    size_t n = 0;
    while ((c = getc(stdin)) != EOF && c != '\n') {
        luaL_addchar(&b, (char)c);
        n++;
    }
    if (c == EOF && ferror(stdin)) {
        int e = errno;
        clearerr(stdin);
        return kb_fail(L, "repl.readline", "cannot read standard input: %s", strerror(e));
    }
    if (c == EOF && n == 0) {
        lua_pushnil(L);
        return 1;
    }
    luaL_pushresult(&b);
    return 1;
}

/* A terminal but no libedit: the prompt and a plain line, no editing or history; Ctrl-C
 * still only drops the line. Says why once. */
static int read_plain_prompt(lua_State *L, const char *prompt)
{
    static int warned;
    if (!warned) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s (no line editing or history)", edit_err);
        kb_log_write(KB_LOG_WARN, "repl", msg);
        warned = 1;
    }
    fputs(prompt, stdout);
    fflush(stdout);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint_at_prompt; /* no SA_RESTART: the read fails with EINTR */
    sigemptyset(&sa.sa_mask);
    got_sigint = 0;
    sigaction(SIGINT, &sa, &old);
    int top = lua_gettop(L);
    int n = read_plain(L);
    sigaction(SIGINT, &old, NULL);
    if (got_sigint) {
        lua_settop(L, top);
        clearerr(stdin);
        lua_pushboolean(L, 0);
        return 1;
    }
    return n;
}

/* readline(prompt) -> line | nil at end of input | false when Ctrl-C cleared the line */
static int l_readline(lua_State *L)
{
    const char *prompt = luaL_optstring(L, 1, "> ");
    if (!isatty(STDIN_FILENO))
        return read_plain(L);
    if (init_editline() < 0)
        return read_plain_prompt(L, prompt);
    fflush(stdout);
    /* No SA_RESTART: Ctrl-C makes libedit's read() fail, so readline() returns. */
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint_at_prompt;
    sigemptyset(&sa.sa_mask);
    got_sigint = 0;
    sigaction(SIGINT, &sa, &old);
    rl_state = L;
    char *line = sym_readline(prompt);
    rl_state = NULL;
    sigaction(SIGINT, &old, NULL);
    if (got_sigint) {
        free(line);
        lua_pushboolean(L, 0);
        return 1;
    }
    if (!line) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, line);
    free(line);
    return 1;
}

static int l_add_history(lua_State *L)
{
    const char *line = luaL_checkstring(L, 1);
    if (*line && init_editline() == 0) /* without libedit there is no history to add to */
        sym_add_history(line);
    return 0;
}

/* libedit's read_history/write_history return 0 or an errno value. */
static int history_result(lua_State *L, const char *op, const char *path, int rc)
{
    if (rc == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    return kb_fail(L, op, "%s: %s", path, strerror(rc > 0 ? rc : EIO));
}

static int l_load_history(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    if (init_editline() < 0)
        return kb_fail(L, "repl.load_history", "%s", edit_err);
    errno = 0;
    return history_result(L, "repl.load_history", path, sym_read_history(path));
}

static int l_save_history(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    if (init_editline() < 0)
        return kb_fail(L, "repl.save_history", "%s", edit_err);
    errno = 0;
    /* The list in memory is stifled to HISTORY_MAX, so this also bounds the file. */
    return history_result(L, "repl.save_history", path, sym_write_history(path));
}

static int l_set_completer(lua_State *L)
{
    if (!lua_isnil(L, 1))
        luaL_checktype(L, 1, LUA_TFUNCTION);
    luaL_unref(L, LUA_REGISTRYINDEX, completer_ref);
    lua_settop(L, 1);
    completer_ref = lua_isnil(L, 1) ? LUA_NOREF : luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Ctrl-C while a chunk runs: the handler may only set a hook; the hook raises the error
 * at the next safe point. It also raises the runtime's interrupt request, so a C primitive that
 * waits (an HTTP request or watch, a sleep) returns at once and the hook fires right after.
 * One-shot, so a second Ctrl-C kills a chunk stuck in other C code. */
static lua_State *running_state;

static void stop_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    /* No position: where the hook happened to fire (often the REPL's own code) means nothing. */
    lua_pushliteral(L, "interrupted");
    lua_error(L);
}

static void on_sigint_running(int sig)
{
    (void)sig;
    kb_intr_raise();
    if (running_state)
        lua_sethook(running_state, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
}

/* pcall_interruptible(fn, ...) -> true, results... | false, err  (like pcall) */
static int l_pcall_interruptible(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_State *outer = running_state;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint_running;
    sa.sa_flags = SA_RESETHAND | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    running_state = L;
    if (!outer)
        kb_intr_clear();
    sigaction(SIGINT, &sa, &old);
    int st = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    sigaction(SIGINT, &old, NULL);
    running_state = outer;
    if (!outer)
        kb_intr_clear();
    if (lua_gethook(L) == stop_hook) /* a Ctrl-C that came too late must not fire later */
        lua_sethook(L, NULL, 0, 0);
    lua_pushboolean(L, st == LUA_OK);
    lua_insert(L, 1);
    return lua_gettop(L);
}

/* isatty([fd = 0]) */
static int l_isatty(lua_State *L)
{
    lua_Integer fd = luaL_optinteger(L, 1, STDIN_FILENO);
    luaL_argcheck(L, fd >= 0 && fd <= INT_MAX, 1, "file descriptor out of range");
    lua_pushboolean(L, isatty((int)fd));
    return 1;
}

/* term_size([fd = 1]) -> columns, rows of the terminal on fd, or nil when it is none */
static int l_term_size(lua_State *L)
{
    lua_Integer fd = luaL_optinteger(L, 1, STDOUT_FILENO);
    luaL_argcheck(L, fd >= 0 && fd <= INT_MAX, 1, "file descriptor out of range");
    struct winsize ws;
    if (ioctl((int)fd, TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushinteger(L, ws.ws_col);
    lua_pushinteger(L, ws.ws_row);
    return 2;
}

/* modules() -> sorted names of the library modules compiled into this binary ("kboot.kube", ...) */
static int l_modules(lua_State *L)
{
    lua_newtable(L);
    lua_Integer n = 0;
    for (const struct kb_embedded *e = kb_embedded_scripts; e->name; e++)
        /* the library, kboot.*: entry scripts (init, repl) and examples (examples.tenants) are
         * programs that run when loaded */
        if (strncmp(e->name, "kboot.", 6) == 0) {
            lua_pushstring(L, e->name);
            lua_rawseti(L, -2, ++n);
        }
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "sort");
    lua_pushvalue(L, -3);
    lua_call(L, 1, 0);
    lua_pop(L, 1);
    return 1;
}

/* docs() -> { [name] = text } of docs/api/<name>.md as built into this binary */
static int l_docs(lua_State *L)
{
    lua_newtable(L);
    for (const struct kb_embedded_doc *d = kb_embedded_docs; d->name; d++) {
        lua_pushlstring(L, d->text, d->len);
        lua_setfield(L, -2, d->name);
    }
    return 1;
}

int luaopen_kboot_repl(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "readline", l_readline },
        { "add_history", l_add_history },
        { "load_history", l_load_history },
        { "save_history", l_save_history },
        { "set_completer", l_set_completer },
        { "pcall_interruptible", l_pcall_interruptible },
        { "isatty", l_isatty },
        { "term_size", l_term_size },
        { "modules", l_modules },
        { "docs", l_docs },
        { NULL, NULL },
    };
    luaL_newlib(L, fns);
    lua_pushinteger(L, HISTORY_MAX);
    lua_setfield(L, -2, "history_max");
    return 1;
}
