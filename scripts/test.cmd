@echo off
rem Runs every check the project has (set-up included on first use); extra
rem arguments go to pytest. The browser-panel tests need CHROMIUM_PATH and npm ci here.
setlocal
set "PY=py -3.11"
where py >nul 2>nul || set "PY=python"
if defined RETOUCH_PYTHON set "PY=%RETOUCH_PYTHON%"
%PY% "%~dp0bootstrap.py" test %*
exit /b %ERRORLEVEL%
