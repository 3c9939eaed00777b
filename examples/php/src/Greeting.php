<?php

declare(strict_types=1);

namespace Hoist\Example;

/** Loaded through Composer's generated autoloader, proving the dependency step ran. */
final class Greeting
{
    public static function text(): string
    {
        return sprintf("Hello from PHP %s, dep ok (composer autoload)\n", PHP_VERSION);
    }
}
