<?php
// composer.json queries for the PHP buildpack. Runs on the stack's php. Usage:
//   php composer.php get FILE KEY.PATH     prints the value ("" when absent)
//   php composer.php check FILE            checks require.php and ext-* against this
//                                          PHP; prints one problem per line, exit 1 if any
//   php composer.php has-packages FILE     exit 0 when require has non-platform packages
//   php composer.php satisfies VERSION CONSTRAINT   (for tests)

declare(strict_types=1);

function load(string $file): array
{
    $data = json_decode((string) @file_get_contents($file), true);
    if (!is_array($data)) {
        fwrite(STDERR, "$file isn't valid JSON: " . json_last_error_msg() . "\n");
        exit(2);
    }
    return $data;
}

function is_platform(string $name): bool
{
    return $name === 'php' || $name === 'php-64bit' || $name === 'composer'
        || $name === 'composer-plugin-api' || $name === 'composer-runtime-api'
        || str_starts_with($name, 'ext-') || str_starts_with($name, 'lib-');
}

function satisfies(string $version, string $constraint): bool
{
    // Composer's own matcher when the distribution ships it (Debian's composer does).
    $semver = '/usr/share/php/Composer/Semver/autoload.php';
    if (is_file($semver)) {
        require_once $semver;
        if (class_exists('Composer\Semver\Semver')) {
            try {
                return \Composer\Semver\Semver::satisfies($version, $constraint);
            } catch (\Throwable $e) {
                return false;
            }
        }
    }
    return fallback_satisfies($version, $constraint);
}

// A subset of Composer constraints: || alternatives, AND by space/comma, >= <= > < != =,
// ^, ~, wildcards (8.2.*), bare versions.
function fallback_satisfies(string $version, string $constraint): bool
{
    foreach (preg_split('/\s*\|\|?\s*/', trim($constraint)) as $alt) {
        $ok = true;
        foreach (preg_split('/\s*,\s*|\s+/', trim($alt)) as $term) {
            if ($term === '' || $term === '*') {
                continue;
            }
            if (!preg_match('/^(>=|<=|>|<|!=|==|=|\^|~)?v?(\d+(?:\.(?:\d+|\*))*)$/', $term, $m)) {
                return false;
            }
            [$op, $v] = [$m[1], $m[2]];
            $parts = explode('.', str_replace('.*', '', $v));
            $lo = implode('.', array_pad($parts, 3, '0'));
            $bump = function (int $i) use ($parts): string {
                $p = array_pad(array_slice($parts, 0, $i + 1), 3, '0');
                $p[$i] = (string) ((int) $p[$i] + 1);
                return implode('.', $p);
            };
            switch ($op) {
                case '^':
                    $hi = ((int) $parts[0] > 0 || count($parts) === 1) ? $bump(0) : $bump(1);
                    $ok = $ok && version_compare($version, $lo, '>=') && version_compare($version, $hi, '<');
                    break;
                case '~':
                    $hi = count($parts) <= 2 ? $bump(0) : $bump(count($parts) - 2);
                    $ok = $ok && version_compare($version, $lo, '>=') && version_compare($version, $hi, '<');
                    break;
                case '':
                case '=':
                case '==':
                    if (str_contains($v, '*') || count($parts) < 3) {
                        $hi = $bump(count($parts) - 1);
                        $ok = $ok && version_compare($version, $lo, '>=') && version_compare($version, $hi, '<');
                    } else {
                        $ok = $ok && version_compare($version, $lo, '==');
                    }
                    break;
                default:
                    $ok = $ok && version_compare($version, $lo, $op);
            }
        }
        if ($ok) {
            return true;
        }
    }
    return false;
}

$cmd = $argv[1] ?? '';
switch ($cmd) {
    case 'get':
        $v = load($argv[2]);
        foreach (explode('.', $argv[3]) as $k) {
            $v = is_array($v) && array_key_exists($k, $v) ? $v[$k] : null;
        }
        if ($v !== null) {
            echo is_string($v) ? $v : json_encode($v);
        }
        exit(0);
    case 'check':
        $require = load($argv[2])['require'] ?? [];
        $problems = [];
        if (isset($require['php']) && !satisfies(PHP_VERSION, (string) $require['php'])) {
            $problems[] = "php {$require['php']} (composer.json require.php) can't be met. Available: "
                . PHP_VERSION . ' (stack). Change require.php to allow ' . PHP_MAJOR_VERSION . '.' . PHP_MINOR_VERSION . '.';
        }
        foreach ($require as $name => $_) {
            if (str_starts_with((string) $name, 'ext-')) {
                $ext = substr((string) $name, 4);
                if (!extension_loaded($ext)) {
                    $problems[] = "PHP extension $ext (composer.json $name) isn't available on this stack; "
                        . 'install the Debian package php' . PHP_MAJOR_VERSION . '.' . PHP_MINOR_VERSION . "-$ext on the host.";
                }
            }
        }
        foreach ($problems as $p) {
            echo $p, "\n";
        }
        exit($problems ? 1 : 0);
    case 'has-packages':
        foreach (array_keys(load($argv[2])['require'] ?? []) as $name) {
            if (!is_platform((string) $name)) {
                exit(0);
            }
        }
        exit(1);
    case 'satisfies':
        exit(satisfies($argv[2], $argv[3]) ? 0 : 1);
    default:
        fwrite(STDERR, "unknown command $cmd\n");
        exit(2);
}
