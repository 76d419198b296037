# ralph's binding.gyp for @openziti/ziti-sdk-nodejs 0.13.3 on Linux (used by install/build-ziti-sdk.sh
# in place of the package's own, which runs git, jq and arch and assumes the C SDK's download layout).
# The directories come in as variables: node-gyp configure -- -Dsdk_src=... (see the script).
#
# Linked: the C SDK (libziti.a), uv-mbed (libuv_mbed.a, with http-parser and uv_link inside) and
# libsodium. NOT linked: libuv, OpenSSL and zlib. Node exports its own copies of all three, and the
# addon runs on Node's event loop with Node's TLS library: a second copy of any of them in the
# process would mix two implementations of the same structures.
{
  'variables': {
    'sdk_src%': '',
    'sdk_build%': '',
    'uv_mbed_src%': '',
    'http_parser_src%': '',
    'uv_link_src%': '',
    'ralph_fixes%': '',
    'sdk_version%': '0.13.3',
  },
  'targets': [
    {
      'target_name': 'ziti_sdk_nodejs',
      'defines': [
        'ZITI_VERSION=<(sdk_version)',
        'ZITI_BRANCH=ralph',
        'ZITI_COMMIT=<(ralph_fixes)',
        'ZITI_OS=linux',
        'RALPH_FIXES="<(ralph_fixes)"',
      ],
      'sources': [
        'src/ziti-add-on.c',
        'src/ziti_close.c',
        'src/ziti_dial.c',
        'src/ziti_enroll.c',
        'src/ziti_hello.c',
        'src/Ziti_https_request.c',
        'src/Ziti_https_request_data.c',
        'src/Ziti_https_request_end.c',
        'src/ziti_init.c',
        'src/ziti_listen.c',
        'src/ziti_service_available.c',
        'src/ziti_set_log_level.c',
        'src/ziti_shutdown.c',
        'src/ziti_write.c',
        'src/ziti_websocket_connect.c',
        'src/ziti_websocket_write.c',
        'src/utils.c',
      ],
      'include_dirs': [
        '<(sdk_src)/includes',
        '<(uv_mbed_src)/include',
        '<(http_parser_src)',
        '<(uv_link_src)/include',
      ],
      'libraries': [
        '<(sdk_build)/library/libziti.a',
        '<(sdk_build)/_deps/uv-mbed-build/libuv_mbed.a',
        # Debian's libsodium.a is not position-independent: link the shared library.
        '-lsodium',
        '-latomic',
        '-lm',
      ],
      'cflags': ['-fno-strict-aliasing', '-g', '-fPIC', '-DSOURCE_PATH_SIZE=3'],
      'conditions': [
        ['OS!="linux"', { 'type': 'none' }],
      ],
    },
  ],
}
