@echo off
rem Runs the sidecar on http://127.0.0.1:7431 (set-up included on first use).
rem Extra arguments go to `retouch-sidecar serve`, e.g. scripts\run.cmd --port 7500.
setlocal
set "PY=py -3.11"
where py >nul 2>nul || set "PY=python"
if defined RETOUCH_PYTHON set "PY=%RETOUCH_PYTHON%"
%PY% "%~dp0bootstrap.py" run %*
exit /b %ERRORLEVEL%
